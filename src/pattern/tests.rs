//! Conformance tables for the pattern language (reference §1.12 and more), each case run
//! through the compiled matcher and the reference evaluator, plus a property test holding the
//! two together.

use proptest::prelude::*;
use serde_json::Value;

use super::*;

/// One case: the compiled matcher and the reference must both give `want`; so must the
/// compiled matcher on the event as trigd writes it ([`ValidJson`], skipped by structure).
#[track_caller]
fn check(pattern: &str, event: &str, want: bool) {
    let p: Value = serde_json::from_str(pattern).expect("pattern JSON");
    let pat = parse(&p).unwrap_or_else(|e| panic!("{pattern} should parse: {e}"));
    let m = Matcher::new([&pat]);
    let mut scratch = m.scratch();
    let mut out = Vec::new();
    m.matches(event, &mut scratch, &mut out)
        .unwrap_or_else(|e| panic!("{event}: {e}"));
    assert_eq!(!out.is_empty(), want, "compiled: {pattern} | {event}");
    let ev: Value = serde_json::from_str(event).expect("event JSON");
    assert_eq!(
        reference_matches(&pat, &ev),
        want,
        "reference: {pattern} | {event}"
    );
    m.matches_valid(&ValidJson::of(&ev), &mut scratch, &mut out)
        .unwrap_or_else(|e| panic!("{event}: {e}"));
    // serde_json keeps the last of duplicate keys, so the written event can differ from the
    // text; the reference on the parsed value is what it must agree with.
    assert_eq!(
        !out.is_empty(),
        reference_matches(&pat, &ev),
        "written: {pattern} | {event}"
    );
    assert_eq!(
        explain(&pat, &ev).is_none(),
        want,
        "explain: {pattern} | {event}"
    );
}

#[track_caller]
fn invalid(pattern: &str, reason: &str) {
    let p: Value = serde_json::from_str(pattern).expect("pattern JSON");
    match parse(&p) {
        Ok(_) => panic!("{pattern} should be refused ({reason})"),
        Err(e) => assert!(
            e.to_string().contains(reason),
            "{pattern}: got {e:?}, want {reason:?}"
        ),
    }
}

const MATCHES: &[(&str, &str, bool)] = &[
    // Exact values and types.
    (r#"{"source":["aws.ec2"]}"#, r#"{"source":"aws.ec2"}"#, true),
    (
        r#"{"source":["aws.ec2"]}"#,
        r#"{"source":"AWS.EC2"}"#,
        false,
    ),
    (
        r#"{"source":["aws.ec2","aws.fargate"]}"#,
        r#"{"source":"aws.fargate"}"#,
        true,
    ),
    (
        r#"{"detail":{"state":["running"]}}"#,
        r#"{"detail":{}}"#,
        false,
    ),
    (
        r#"{"detail":{"state":["running"]}}"#,
        r#"{"detail":{"state":"running"}}"#,
        true,
    ),
    (r#"{"number":[300]}"#, r#"{"number":300.0}"#, true),
    (r#"{"number":[300]}"#, r#"{"number":3.0e2}"#, true),
    (r#"{"number":[300]}"#, r#"{"number":"300"}"#, false),
    (r#"{"number":["300"]}"#, r#"{"number":300}"#, false),
    (r#"{"number":[0]}"#, r#"{"number":-0.0}"#, true),
    (r#"{"b":[false]}"#, r#"{"b":"false"}"#, false),
    (r#"{"b":[false]}"#, r#"{"b":false}"#, true),
    (r#"{"b":[false]}"#, r#"{"b":true}"#, false),
    (r#"{"b":[true]}"#, r#"{"b":true}"#, true),
    (r#"{"x":[null]}"#, r#"{"x":null}"#, true),
    (r#"{"x":[null]}"#, r#"{"x":"null"}"#, false),
    (r#"{"x":[null]}"#, r#"{}"#, false),
    (r#"{"x":[""]}"#, r#"{"x":null}"#, false),
    (r#"{"x":[""]}"#, r#"{"x":""}"#, true),
    (r#"{"MY_KEY":["v"]}"#, r#"{"my_key":"v"}"#, false),
    (
        r#"{"detail":{"k":["v"]}}"#,
        r#"{"detail":"{\"k\":\"v\"}"}"#,
        false,
    ),
    (r#"{"s":["é"]}"#, r#"{"s":"\u00e9"}"#, true),
    (r#"{"s":["a\"b"]}"#, r#"{"s":"a\"b"}"#, true),
    (r#"{"s":["😀"]}"#, r#"{"s":"\ud83d\ude00"}"#, true),
    (r#"{"a":["x"]}"#, r#"{"a":{"b":"x"}}"#, false),
    (
        r#"{"a":["x"],"b":["y"]}"#,
        r#"{"a":"x","b":"y","c":"z"}"#,
        true,
    ),
    (r#"{"a":["x"],"b":["y"]}"#, r#"{"a":"x","b":"n"}"#, false),
    // Arrays in events.
    (
        r#"{"resources":["arn:a"]}"#,
        r#"{"resources":["arn:b","arn:a"]}"#,
        true,
    ),
    (
        r#"{"resources":["arn:a"]}"#,
        r#"{"resources":["arn:b"]}"#,
        false,
    ),
    (
        r#"{"resources":[{"exists":true}]}"#,
        r#"{"resources":[]}"#,
        false,
    ),
    (r#"{"resources":[null]}"#, r#"{"resources":[]}"#, false),
    (
        r#"{"resources":[{"exists":false}]}"#,
        r#"{"resources":[]}"#,
        true,
    ),
    (
        r#"{"e":{"firstName":["Anna"],"lastName":["Jones"]}}"#,
        r#"{"e":[{"firstName":"Anna","lastName":"Smith"},{"firstName":"Peter","lastName":"Jones"}]}"#,
        false,
    ),
    (
        r#"{"e":{"firstName":["Anna"],"lastName":["Jones"]}}"#,
        r#"{"e":[{"firstName":"Anna","lastName":"Smith"},{"firstName":"Anna","lastName":"Jones"}]}"#,
        true,
    ),
    (
        r#"{"e":{"firstName":["Anna"]}}"#,
        r#"{"e":[[{"firstName":"John"},{"firstName":"Anna"}],[{"firstName":"Peter"}]]}"#,
        true,
    ),
    (
        r#"{"employees":{"firstName":["Anna"]}}"#,
        r#"{"employees":[{"firstName":"John"},{"firstName":"Anna"}]}"#,
        true,
    ),
    (
        r#"{"a":["x"],"e":{"n":["y"]}}"#,
        r#"{"a":"x","e":[{"n":"q"},{"n":"y"}]}"#,
        true,
    ),
    (
        r#"{"e":{"a":["1"]},"f":{"b":["2"]}}"#,
        r#"{"e":[{"a":"1"}],"f":[{"b":"0"},{"b":"2"}]}"#,
        true,
    ),
    (
        r#"{"e":{"a":["1"],"b":{"c":["2"]}}}"#,
        r#"{"e":[{"a":"1","b":[{"c":"3"},{"c":"2"}]}]}"#,
        true,
    ),
    (
        r#"{"e":{"a":["1"],"b":{"c":["2"]}}}"#,
        r#"{"e":[{"a":"1","b":[{"c":"3"}]},{"a":"0","b":[{"c":"2"}]}]}"#,
        false,
    ),
    (r#"{"n":[3]}"#, r#"{"n":[1,2,3]}"#, true),
    (r#"{"n":[{"numeric":[">",10]}]}"#, r#"{"n":[1,2,30]}"#, true),
    (r#"{"n":[{"numeric":[">",10]}]}"#, r#"{"n":[1,2,3]}"#, false),
    // Dot joining.
    (
        r#"{"detail":{"state":{"status":["running"]}}}"#,
        r#"{"detail":{"state.status":"running"}}"#,
        true,
    ),
    (
        r#"{"detail":{"state.status":["running"]}}"#,
        r#"{"detail":{"state":{"status":"running"}}}"#,
        true,
    ),
    (
        r#"{"detail.state":["running"]}"#,
        r#"{"detail":{"state":"running"}}"#,
        true,
    ),
    (
        r#"{"detail":{"state":["running"]}}"#,
        r#"{"detail":{"state":{"status":"running"}}}"#,
        false,
    ),
    // The empty string is a field name like any other (found by fuzzing).
    (r#"{"":["x"]}"#, r#"{"":["x"]}"#, true),
    (r#"{"":["x"]}"#, r#"{"":"y"}"#, false),
    (r#"{"a":{"":["x"]}}"#, r#"{"a":{"":"x"}}"#, true),
    (r#"{"a.":["x"]}"#, r#"{"a":{"":"x"}}"#, true),
    // Duplicate keys in the pattern: the last wins.
    (
        r#"{"l":[{"prefix":"us-"}],"l":[{"anything-but":"us-east"}]}"#,
        r#"{"l":"eu-west"}"#,
        true,
    ),
    // prefix / suffix.
    (
        r#"{"time":[{"prefix":"2017-10-02"}]}"#,
        r#"{"time":"2017-10-02T18:43:48Z"}"#,
        true,
    ),
    (
        r#"{"time":[{"prefix":"2017-10-02"}]}"#,
        r#"{"time":"2017-10-03T18:43:48Z"}"#,
        false,
    ),
    (
        r#"{"source":[{"prefix":""}]}"#,
        r#"{"source":"anything"}"#,
        true,
    ),
    (r#"{"source":[{"prefix":""}]}"#, r#"{"source":""}"#, true),
    (r#"{"source":[{"prefix":""}]}"#, r#"{"source":5}"#, false),
    (
        r#"{"source":[{"prefix":"aws."}]}"#,
        r#"{"source":"aws"}"#,
        false,
    ),
    (
        r#"{"s":[{"prefix":{"equals-ignore-case":"EventB"}}]}"#,
        r#"{"s":"EvEnTbridge"}"#,
        true,
    ),
    (
        r#"{"s":[{"prefix":{"equals-ignore-case":"EventB"}}]}"#,
        r#"{"s":"Event"}"#,
        false,
    ),
    (r#"{"f":[{"suffix":".png"}]}"#, r#"{"f":"image.png"}"#, true),
    (
        r#"{"f":[{"suffix":".png"}]}"#,
        r#"{"f":"image.PNG"}"#,
        false,
    ),
    (r#"{"f":[{"suffix":""}]}"#, r#"{"f":"x"}"#, true),
    (
        r#"{"f":[{"suffix":{"equals-ignore-case":".png"}}]}"#,
        r#"{"f":"image.PNG"}"#,
        true,
    ),
    (
        r#"{"f":[{"suffix":{"equals-ignore-case":".png"}}]}"#,
        r#"{"f":"image.jpg"}"#,
        false,
    ),
    (
        r#"{"f":[{"prefix":"a"},{"prefix":"ab"}]}"#,
        r#"{"f":"abc"}"#,
        true,
    ),
    (
        r#"{"f":[{"suffix":"c"},{"prefix":"z"}]}"#,
        r#"{"f":"abc"}"#,
        true,
    ),
    // equals-ignore-case.
    (
        r#"{"n":[{"equals-ignore-case":"alice"}]}"#,
        r#"{"n":"ALICE"}"#,
        true,
    ),
    (
        r#"{"n":[{"equals-ignore-case":"alice"}]}"#,
        r#"{"n":"alicia"}"#,
        false,
    ),
    (
        r#"{"n":[{"equals-ignore-case":"Ärger"}]}"#,
        r#"{"n":"äRGER"}"#,
        true,
    ),
    (r#"{"v":[{"equals-ignore-case":""}]}"#, r#"{"v":""}"#, true),
    (
        r#"{"v":[{"equals-ignore-case":""}]}"#,
        r#"{"v":"x"}"#,
        false,
    ),
    (r#"{"v":[{"equals-ignore-case":"1"}]}"#, r#"{"v":1}"#, false),
    // wildcard.
    (
        r#"{"p":[{"wildcard":"/Users/*/doc.txt"}]}"#,
        r#"{"p":"/Users/u/a/b/doc.txt"}"#,
        true,
    ),
    (
        r#"{"p":[{"wildcard":"/Users/*/doc.txt"}]}"#,
        r#"{"p":"/Users/u/notmatchingdoc.txt"}"#,
        false,
    ),
    (r#"{"p":[{"wildcard":"a*b"}]}"#, r#"{"p":"ab"}"#, true),
    (r#"{"p":[{"wildcard":"a\\*b"}]}"#, r#"{"p":"a*b"}"#, true),
    (r#"{"p":[{"wildcard":"a\\*b"}]}"#, r#"{"p":"axb"}"#, false),
    (r#"{"p":[{"wildcard":""}]}"#, r#"{"p":"x"}"#, false),
    (r#"{"p":[{"wildcard":""}]}"#, r#"{"p":""}"#, true),
    (r#"{"p":[{"wildcard":"*"}]}"#, r#"{"p":7}"#, false),
    (
        r#"{"p":[{"wildcard":"arn:aws:events:us-east-1:*:event-bus/*"}]}"#,
        r#"{"p":"arn:aws:events:us-east-1:123:event-bus/default"}"#,
        true,
    ),
    // anything-but.
    (r#"{"state":[{"anything-but":"init"}]}"#, r#"{}"#, false),
    (
        r#"{"state":[{"anything-but":"init"}]}"#,
        r#"{"state":null}"#,
        true,
    ),
    (
        r#"{"state":[{"anything-but":"init"}]}"#,
        r#"{"state":"init"}"#,
        false,
    ),
    (
        r#"{"state":[{"anything-but":"init"}]}"#,
        r#"{"state":12}"#,
        true,
    ),
    (
        r#"{"state":[{"anything-but":"init"}]}"#,
        r#"{"state":"running"}"#,
        true,
    ),
    (
        r#"{"state":[{"anything-but":["stopped","overloaded"]}]}"#,
        r#"{"state":"overloaded"}"#,
        false,
    ),
    (
        r#"{"state":[{"anything-but":["stopped","overloaded"]}]}"#,
        r#"{"state":"ok"}"#,
        true,
    ),
    (
        r#"{"x":[{"anything-but":[100,200]}]}"#,
        r#"{"x":100.0}"#,
        false,
    ),
    (
        r#"{"x":[{"anything-but":[100,200]}]}"#,
        r#"{"x":150}"#,
        true,
    ),
    (r#"{"x":[{"anything-but":0}]}"#, r#"{"x":789}"#, true),
    (r#"{"x":[{"anything-but":0}]}"#, r#"{"x":"0"}"#, true),
    (r#"{"x":[{"anything-but":"101"}]}"#, r#"{"x":"42"}"#, true),
    (r#"{"x":[{"anything-but":"101"}]}"#, r#"{"x":"101"}"#, false),
    (r#"{"x":[{"anything-but":"101"}]}"#, r#"{"x":101}"#, true),
    (
        r#"{"s":[{"anything-but":{"prefix":"init"}}]}"#,
        r#"{"s":"initializing"}"#,
        false,
    ),
    (
        r#"{"s":[{"anything-but":{"prefix":"init"}}]}"#,
        r#"{"s":"running"}"#,
        true,
    ),
    (
        r#"{"s":[{"anything-but":{"prefix":"init"}}]}"#,
        r#"{"s":12}"#,
        true,
    ),
    (
        r#"{"s":[{"anything-but":{"prefix":"init"}}]}"#,
        r#"{"s":null}"#,
        true,
    ),
    (
        r#"{"s":[{"anything-but":{"prefix":"init"}}]}"#,
        r#"{}"#,
        false,
    ),
    (
        r#"{"s":[{"anything-but":{"prefix":["init","error"]}}]}"#,
        r#"{"s":"error: x"}"#,
        false,
    ),
    (
        r#"{"s":[{"anything-but":{"suffix":[".txt",".jpg"]}}]}"#,
        r#"{"s":"file.txt.bak"}"#,
        true,
    ),
    (
        r#"{"s":[{"anything-but":{"suffix":[".txt",".jpg"]}}]}"#,
        r#"{"s":"a.jpg"}"#,
        false,
    ),
    (
        r#"{"s":[{"anything-but":{"equals-ignore-case":["initializing","stopped"]}}]}"#,
        r#"{"s":"Stopped"}"#,
        false,
    ),
    (
        r#"{"s":[{"anything-but":{"equals-ignore-case":["initializing","stopped"]}}]}"#,
        r#"{"s":"pending"}"#,
        true,
    ),
    (
        r#"{"s":[{"anything-but":{"equals-ignore-case":"x"}}]}"#,
        r#"{"s":null}"#,
        true,
    ),
    (
        r#"{"s":[{"anything-but":{"wildcard":"*/dir/*"}}]}"#,
        r#"{"s":"dir/init/file"}"#,
        true,
    ),
    (
        r#"{"s":[{"anything-but":{"wildcard":"*/dir/*"}}]}"#,
        r#"{"s":"a/dir/b"}"#,
        false,
    ),
    (
        r#"{"s":[{"anything-but":{"wildcard":"*/dir/*"}}]}"#,
        r#"{"s":123}"#,
        true,
    ),
    (
        r#"{"s":[{"anything-but":{"wildcard":""}}]}"#,
        r#"{"s":"x"}"#,
        true,
    ),
    (
        r#"{"s":[{"anything-but":{"wildcard":""}}]}"#,
        r#"{"s":""}"#,
        false,
    ),
    (
        r#"{"s":[{"anything-but":"a"}]}"#,
        r#"{"s":["a","b"]}"#,
        true,
    ),
    (r#"{"s":[{"anything-but":"a"}]}"#, r#"{"s":["a"]}"#, false),
    // numeric.
    (r#"{"c":[{"numeric":[">",0,"<=",5]}]}"#, r#"{"c":5}"#, true),
    (r#"{"c":[{"numeric":[">",0,"<=",5]}]}"#, r#"{"c":0}"#, false),
    (
        r#"{"c":[{"numeric":[">",0,"<=",5]}]}"#,
        r#"{"c":5.0000001}"#,
        false,
    ),
    (r#"{"c":[{"numeric":[">=",0,"<",5]}]}"#, r#"{"c":0}"#, true),
    (
        r#"{"c":[{"numeric":["=",3.018e2]}]}"#,
        r#"{"c":301.8}"#,
        true,
    ),
    (r#"{"c":[{"numeric":[">",100]}]}"#, r#"{"c":"300"}"#, false),
    (r#"{"c":[{"numeric":[">",100]}]}"#, r#"{"c":null}"#, false),
    (r#"{"c":[{"numeric":[">",100]}]}"#, r#"{"c":101.0}"#, true),
    (
        r#"{"c":[{"numeric":["<",-122.41600944012424]}]}"#,
        r#"{"c":-122.5}"#,
        true,
    ),
    (
        r#"{"c":[{"numeric":["<=",-1e-3]}]}"#,
        r#"{"c":-0.001}"#,
        true,
    ),
    (
        r#"{"c":[{"numeric":["<",5]},{"numeric":[">",10]}]}"#,
        r#"{"c":12}"#,
        true,
    ),
    (
        r#"{"c":[{"numeric":["<",5]},{"numeric":[">",10]}]}"#,
        r#"{"c":7}"#,
        false,
    ),
    (r#"{"c":[{"numeric":["=",5]},3]}"#, r#"{"c":3}"#, true),
    // exists.
    (
        r#"{"d":{"s":[{"exists":true}]}}"#,
        r#"{"d":{"s":{"k":1}}}"#,
        false,
    ),
    (
        r#"{"d":{"s":[{"exists":true}]}}"#,
        r#"{"d":{"s":null}}"#,
        true,
    ),
    (r#"{"d":{"s":[{"exists":true}]}}"#, r#"{"d":{"s":0}}"#, true),
    (
        r#"{"d":{"s":[{"exists":false}]}}"#,
        r#"{"d":{"s":{"k":1}}}"#,
        true,
    ),
    (
        r#"{"a":{"b":{"c":[{"exists":false}]}}}"#,
        r#"{"a":{"x":1}}"#,
        true,
    ),
    (r#"{"a":{"b":{"c":[{"exists":false}]}}}"#, r#"{}"#, true),
    (
        r#"{"a":{"b":{"c":[{"exists":false}]}}}"#,
        r#"{"a":{"b":{"c":1}}}"#,
        false,
    ),
    (
        r#"{"k":[{"exists":true},{"prefix":"IGNORED"}]}"#,
        r#"{"k":"v"}"#,
        true,
    ),
    (
        r#"{"S":[{"anything-but":["roses"]},{"exists":false}]}"#,
        r#"{"x":1}"#,
        true,
    ),
    (
        r#"{"S":[{"anything-but":["roses"]},{"exists":false}]}"#,
        r#"{"S":"tulips"}"#,
        true,
    ),
    (
        r#"{"S":[{"anything-but":["roses"]},{"exists":false}]}"#,
        r#"{"S":"roses"}"#,
        false,
    ),
    (
        r#"{"a":["1"],"b":[{"exists":false}]}"#,
        r#"{"a":"1"}"#,
        true,
    ),
    (
        r#"{"a":["1"],"b":[{"exists":false}]}"#,
        r#"{"a":"1","b":2}"#,
        false,
    ),
    // cidr.
    (
        r#"{"ip":[{"cidr":"10.0.0.0/24"}]}"#,
        r#"{"ip":"10.0.0.255"}"#,
        true,
    ),
    (
        r#"{"ip":[{"cidr":"10.0.0.0/24"}]}"#,
        r#"{"ip":"10.0.1.0"}"#,
        false,
    ),
    (r#"{"ip":[{"cidr":"10.0.0.0/24"}]}"#, r#"{"ip":123}"#, false),
    (
        r#"{"ip":[{"cidr":"10.0.0.0/24"}]}"#,
        r#"{"ip":"not an ip"}"#,
        false,
    ),
    (
        r#"{"ip":[{"cidr":"2001:db8:1234:1a00::/64"}]}"#,
        r#"{"ip":"2001:0db8:1234:1a00:0000:0000:0000:0001"}"#,
        true,
    ),
    (
        r#"{"ip":[{"cidr":"2001:db8:1234:1a00::/64"}]}"#,
        r#"{"ip":"2001:0db8:1234:1a01::1"}"#,
        false,
    ),
    // $or.
    (r#"{"$or":[{"a":["1"]},{"b":["2"]}]}"#, r#"{"b":"2"}"#, true),
    (
        r#"{"$or":[{"a":["1"]},{"b":["2"]}]}"#,
        r#"{"c":"3"}"#,
        false,
    ),
    (
        r#"{"x":["y"],"$or":[{"a":["1"]},{"b":["2"]}]}"#,
        r#"{"x":"y","a":"1"}"#,
        true,
    ),
    (
        r#"{"x":["y"],"$or":[{"a":["1"]},{"b":["2"]}]}"#,
        r#"{"x":"n","a":"1"}"#,
        false,
    ),
    (
        r#"{"detail":{"$or":[{"c":[{"numeric":[">",5]}]},{"d":["x"]}]}}"#,
        r#"{"detail":{"d":"x"}}"#,
        true,
    ),
    (
        r#"{"detail":{"$or":[{"c":[{"numeric":[">",5]}]},{"d":["x"]}]}}"#,
        r#"{"detail":{"c":1,"d":"y"}}"#,
        false,
    ),
    (
        r#"{"$or":[{"a":["1"]},{"$or":[{"b":["2"]},{"c":["3"]}]}]}"#,
        r#"{"c":"3"}"#,
        true,
    ),
    (
        r#"{"$or":[{"a":["1"]},{"b":["2"]}],"c":{"$or":[{"d":["4"]},{"e":["5"]}]}}"#,
        r#"{"b":"2","c":{"e":"5"}}"#,
        true,
    ),
    (
        r#"{"$or":[{"a":["1"]},{"b":["2"]}],"c":{"$or":[{"d":["4"]},{"e":["5"]}]}}"#,
        r#"{"b":"2","c":{"f":"5"}}"#,
        false,
    ),
    (r#"{"$or":{"a":["1"]}}"#, r#"{"$or":{"a":"1"}}"#, true),
    (
        r#"{"$or":[{"a":[{"exists":false}]},{"b":["2"]}]}"#,
        r#"{"c":1}"#,
        true,
    ),
];

#[test]
fn conformance_matches() {
    for (pattern, event, want) in MATCHES {
        check(pattern, event, *want);
    }
}

const INVALID: &[(&str, &str)] = &[
    (r#"[]"#, "Filter is not an object"),
    (r#""x""#, "Filter is not an object"),
    (r#"{}"#, "Empty objects are not allowed"),
    (
        r#"{"detail":{}}"#,
        "Empty objects are not allowed (at detail)",
    ),
    (r#"{"resources":[]}"#, "Empty arrays are not allowed"),
    (r#"{"int":42}"#, r#""int" must be an object or an array"#),
    (
        r#"{"string":"v"}"#,
        r#""string" must be an object or an array"#,
    ),
    (r#"{"n":null}"#, r#""n" must be an object or an array"#),
    (
        r#"{"a":[["x"]]}"#,
        "Match value must be String, number, true, false, or null",
    ),
    (r#"{"a":[{}]}"#, "Only one key allowed in match expression"),
    (
        r#"{"a":[{"prefix":"x","suffix":"y"}]}"#,
        "Only one key allowed in match expression",
    ),
    (r#"{"a":[{"regex":"x"}]}"#, "Unrecognized match type regex"),
    (
        r#"{"c":[{"NUMERIC":["=",5]}]}"#,
        "Unrecognized match type NUMERIC",
    ),
    (
        r#"{"c":[{"EXISTS":true}]}"#,
        "Unrecognized match type EXISTS",
    ),
    (
        r#"{"f":[{"prefix":123}]}"#,
        "prefix match pattern must be a string",
    ),
    (
        r#"{"f":[{"prefix":["a"]}]}"#,
        "prefix match pattern must be a string",
    ),
    (
        r#"{"f":[{"prefix":null}]}"#,
        "prefix match pattern must be a string",
    ),
    (
        r#"{"f":[{"suffix":1}]}"#,
        "suffix match pattern must be a string",
    ),
    (
        r#"{"f":[{"prefix":{"equals-ignore-case":1}}]}"#,
        "equals-ignore-case match pattern must be a string",
    ),
    (
        r#"{"f":[{"prefix":{"wildcard":"x"}}]}"#,
        "Unsupported prefix pattern: wildcard",
    ),
    (
        r#"{"n":["x",{"equals-ignore-case":["a"]}]}"#,
        "equals-ignore-case match pattern must be a string",
    ),
    (
        r#"{"n":[{"equals-ignore-case":{"prefix":"x"}}]}"#,
        "equals-ignore-case match pattern must be a string",
    ),
    (
        r#"{"n":[{"equals-ignore-case":5}]}"#,
        "equals-ignore-case match pattern must be a string",
    ),
    (
        r#"{"p":[{"wildcard":"a**b"}]}"#,
        "Consecutive wildcard characters at pos 2",
    ),
    (
        r#"{"p":[{"wildcard":"*:*:*:*:*:event-bus/*"}]}"#,
        "Rule is too complex",
    ),
    (r#"{"p":[{"wildcard":"a\\b"}]}"#, "Invalid escape character"),
    (
        r#"{"p":[{"wildcard":123}]}"#,
        "wildcard match pattern must be a string",
    ),
    (
        r#"{"p":[{"wildcard":["a"]}]}"#,
        "wildcard match pattern must be a string",
    ),
    (
        r#"{"x":[{"anything-but":["a",1]}]}"#,
        "mixed type is not supported",
    ),
    (
        r#"{"x":[{"anything-but":null}]}"#,
        "Value of anything-but must be an array or single string/number value",
    ),
    (
        r#"{"x":[{"anything-but":true}]}"#,
        "Value of anything-but must be an array or single string/number value",
    ),
    (
        r#"{"x":[{"anything-but":["stopped",null]}]}"#,
        "mixed type is not supported",
    ),
    (
        r#"{"x":[{"anything-but":[]}]}"#,
        "Empty arrays are not allowed",
    ),
    (
        r#"{"s":[{"anything-but":{"prefix":""}}]}"#,
        "Null prefix not allowed",
    ),
    (
        r#"{"s":[{"anything-but":{"suffix":""}}]}"#,
        "Null suffix not allowed",
    ),
    (
        r#"{"s":[{"anything-but":{"prefix":["a",""]}}]}"#,
        "Null prefix not allowed",
    ),
    (
        r#"{"s":[{"anything-but":{"prefix":123}}]}"#,
        "prefix match pattern must be a string",
    ),
    (
        r#"{"s":[{"anything-but":{"suffix":123}}]}"#,
        "suffix match pattern must be a string",
    ),
    (
        r#"{"s":[{"anything-but":{"prefix":{"equals-ignore-case":"x"}}}]}"#,
        "prefix match pattern must be a string",
    ),
    (
        r#"{"s":[{"anything-but":{"suffix":{"equals-ignore-case":"x"}}}]}"#,
        "suffix match pattern must be a string",
    ),
    (
        r#"{"s":[{"anything-but":{"equals-ignore-case":123}}]}"#,
        "equals-ignore-case match pattern must be a string",
    ),
    (
        r#"{"s":[{"anything-but":{"equals-ignore-case":[123,456]}}]}"#,
        "equals-ignore-case match pattern must be a string",
    ),
    (
        r#"{"s":[{"anything-but":{"wildcard":123}}]}"#,
        "wildcard match pattern must be a string",
    ),
    (
        r#"{"s":[{"anything-but":{"wildcard":["a",1]}}]}"#,
        "wildcard match pattern must be a string",
    ),
    (
        r#"{"s":[{"anything-but":{"wildcard":"a**"}}]}"#,
        "Consecutive wildcard characters",
    ),
    (
        r#"{"s":[{"anything-but":{"numeric":[">",1]}}]}"#,
        "Unsupported anything-but pattern: numeric",
    ),
    (
        r#"{"s":[{"anything-but":{"exists":true}}]}"#,
        "Unsupported anything-but pattern: exists",
    ),
    (
        r#"{"s":[{"anything-but":{"cidr":"10.0.0.0/8"}}]}"#,
        "Unsupported anything-but pattern: cidr",
    ),
    (
        r#"{"s":[{"anything-but":{"prefix":"a","suffix":"b"}}]}"#,
        "Only one key allowed in match expression",
    ),
    (
        r#"{"c":[{"numeric":10}]}"#,
        "Value of numeric must be an array",
    ),
    (r#"{"c":[{"numeric":[]}]}"#, "Empty arrays are not allowed"),
    (
        r#"{"c":[{"numeric":["<",5,">",1]}]}"#,
        "Bad numeric range operator: <",
    ),
    (
        r#"{"c":[{"numeric":[">",5,"<",1]}]}"#,
        "Bottom must be less than top",
    ),
    (
        r#"{"c":[{"numeric":[">",5,"<",5]}]}"#,
        "Bottom must be less than top",
    ),
    (
        r#"{"c":[{"numeric":[">",0,">",0]}]}"#,
        "Bad numeric range operator: >",
    ),
    (
        r#"{"c":[{"numeric":[">",0,"<"]}]}"#,
        "Value of < must be numeric",
    ),
    (r#"{"c":[{"numeric":[">"]}]}"#, "Value of > must be numeric"),
    (
        r#"{"c":[{"numeric":["=","5"]}]}"#,
        "Value of = must be numeric",
    ),
    (
        r#"{"c":[{"numeric":["~",5]}]}"#,
        "Unrecognized numeric range operator: ~",
    ),
    (
        r#"{"c":[{"numeric":[5,">"]}]}"#,
        "Invalid member in numeric match: 5",
    ),
    (
        r#"{"c":[{"numeric":[">",0,"<",5,"<",6]}]}"#,
        "Too many elements in numeric expression",
    ),
    (
        r#"{"c":[{"numeric":["=",1,"<",5]}]}"#,
        "Bad numeric range operator: =",
    ),
    (
        r#"{"k":[{"exists":"yes"}]}"#,
        "exists match pattern must be either true or false",
    ),
    (
        r#"{"k":[{"exists":1}]}"#,
        "exists match pattern must be either true or false",
    ),
    (
        r#"{"ip":[{"cidr":"bad-filter"}]}"#,
        "Malformed CIDR, one '/' required",
    ),
    (
        r#"{"ip":[{"cidr":"10.0.0.0/x"}]}"#,
        "Malformed CIDR, mask bits must be an integer",
    ),
    (
        r#"{"ip":[{"cidr":"10.0.0.300/8"}]}"#,
        "Nonstandard IP address: 10.0.0.300",
    ),
    (
        r#"{"ip":[{"cidr":["10.0.0.0/8"]}]}"#,
        "cidr match pattern must be a string",
    ),
    (
        r#"{"$or":[{"a":["1"]}]}"#,
        "There must have at least 2 Objects in $or relationship",
    ),
    (
        r#"{"$or":[]}"#,
        "There must have at least 2 Objects in $or relationship",
    ),
    (
        r#"{"$or":[{"a":["1"]},"b"]}"#,
        "Only JSON object is allowed in array of $or relationship",
    ),
    (
        r#"{"$or":[{"prefix":["x"]},{"b":["2"]}]}"#,
        "\"prefix\" is an operator name",
    ),
    (
        r#"{"$or":[{"a":["1"]},{"numeric":["2"]}]}"#,
        "\"numeric\" is an operator name",
    ),
    (
        r#"{"$or":[{"a":[]},{"b":["2"]}]}"#,
        "Empty arrays are not allowed (at $or[0].a)",
    ),
    (r#"{"$or":"x"}"#, "\"$or\" must be an object or an array"),
];

#[test]
fn conformance_invalid() {
    for (pattern, reason) in INVALID {
        invalid(pattern, reason);
    }
}

#[test]
fn or_combination_limit() {
    // Four `$or`s of six alternatives each: 6^4 = 1296 combinations.
    let or = |k: &str| {
        let alts: Vec<String> = (0..6).map(|i| format!(r#"{{"{k}{i}":["v"]}}"#)).collect();
        format!(r#"{{"$or":[{}]}}"#, alts.join(","))
    };
    let pattern = format!(
        r#"{{"a":{},"b":{},"c":{},"d":{}}}"#,
        or("a"),
        or("b"),
        or("c"),
        or("d")
    );
    invalid(&pattern, "more than 1000 combinations");
    let ok = format!(r#"{{"a":{},"b":{},"c":{}}}"#, or("a"), or("b"), or("c"));
    let p = parse(&serde_json::from_str(&ok).unwrap()).unwrap();
    assert_eq!(p.branches.len(), 216);
}

#[test]
fn size_limit() {
    let long = "x".repeat(2040);
    invalid(
        &format!(r#"{{"a":["{long}"]}}"#),
        "EventBridge allows at most 2048",
    );
    let fits = "x".repeat(2030 - 20);
    assert!(parse(&serde_json::from_str(&format!(r#"{{"a":["{fits}"]}}"#)).unwrap()).is_ok());
}

#[test]
fn error_paths_point_at_the_node() {
    let p: Value =
        serde_json::from_str(r#"{"detail":{"object":{"key":[{"suffix":".jpg"},{"prefix":5}]}}}"#)
            .unwrap();
    let e = parse(&p).unwrap_err();
    assert_eq!(display_path(&e.path), "detail.object.key[1].prefix");
}

#[test]
fn every_problem_of_a_pattern_is_reported_in_document_order() {
    let p: Value = serde_json::from_str(
        r#"{"source":[],"detail":{"key":[{"sufix":".jpg"},"ok",{"prefix":5}],"n":7},
            "$or":[{"a":["x"]},{"b":[{"anything-but":{"prefx":"y"}}]}]}"#,
    )
    .unwrap();
    let errors = parse_all(&p).unwrap_err();
    let got: Vec<(String, &str)> = errors
        .iter()
        .map(|e| (display_path(&e.path), e.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("source".to_owned(), "Empty arrays are not allowed"),
            (
                "detail.key[0].sufix".to_owned(),
                "Unrecognized match type sufix"
            ),
            (
                "detail.key[2].prefix".to_owned(),
                "prefix match pattern must be a string"
            ),
            ("detail.n".to_owned(), "\"n\" must be an object or an array"),
            (
                "$or[1].b[0].anything-but.prefx".to_owned(),
                "Unsupported anything-but pattern: prefx"
            ),
        ]
    );
    // `parse` stops at the first.
    assert_eq!(parse(&p).unwrap_err(), errors[0]);
}

#[test]
fn an_unknown_operator_name_carries_the_names_accepted_in_its_place() {
    let expected = |pattern: Value| parse(&pattern).unwrap_err().expected;
    assert!(expected(serde_json::json!({"a": [{"sufix": "x"}]})).contains(&"suffix"));
    assert_eq!(
        expected(serde_json::json!({"a": [{"anything-but": {"sufix": "x"}}]})),
        ["prefix", "suffix", "equals-ignore-case", "wildcard"]
    );
    let e = parse(&serde_json::json!({"a": [{"prefix": {"equals-ignore-cas": "x"}}]})).unwrap_err();
    assert_eq!(e.expected, ["equals-ignore-case"]);
    assert_eq!(display_path(&e.path), "a[0].prefix.equals-ignore-cas");
    // Other problems name nothing.
    assert!(expected(serde_json::json!({"a": [{"prefix": 5}]})).is_empty());
}

#[test]
fn malformed_events_are_refused() {
    let pat = parse(&serde_json::json!({"a": ["x"]})).unwrap();
    let m = Matcher::new([&pat]);
    let mut s = m.scratch();
    let mut out = Vec::new();
    for bad in [
        "",
        "[]",
        "\"x\"",
        "{",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":\"x\",}",
        "{\"a\":\"x\"} x",
        "{\"b\":[1,2}",
        "{\"b\":tru}",
        "{\"b\":01}",
        "{\"b\":1.}",
        "{\"b\":-}",
        "{\"b\":\"\\x\"}",
        "{\"a\":\"\\ud800\"}",
        // Lone surrogates in a skipped string (`b` is named by no pattern): refused as in a
        // named one. Until issue 17 the skipper checked only the four hex digits.
        "{\"b\":\"\\ud800\"}",
        "{\"b\":\"\\udc00\"}",
        "{\"b\":\"\\ud800\\u0041\"}",
        "{\"b\":[{\"c\":\"\\ud83d x\"}]}",
        "{\"b\":{\"c\":1,}}",
        "{\"b\":\"a\u{1}b\"}",
        "{'a':1}",
    ] {
        assert!(
            m.matches(bad, &mut s, &mut out).is_err(),
            "should refuse {bad:?}"
        );
    }
    let deep = format!("{{\"b\":{}{}}}", "[".repeat(600), "]".repeat(600));
    assert!(m.matches(&deep, &mut s, &mut out).is_err());
    let deep_named = format!("{{\"a\":{}{}}}", "[".repeat(600), "]".repeat(600));
    assert!(m.matches(&deep_named, &mut s, &mut out).is_err());
    // The matcher still works after errors.
    m.matches(r#"{"a":"x"}"#, &mut s, &mut out).unwrap();
    assert_eq!(out, vec![0]);
}

#[test]
fn duplicate_keys_in_an_event_are_each_seen() {
    // The scanner streams: both occurrences are values of `a` (as aws/event-ruler's streaming
    // parser sees them). serde_json keeps only the last, so the reference cannot say.
    let pat = parse(&serde_json::json!({"a": ["x"]})).unwrap();
    let m = Matcher::new([&pat]);
    let mut s = m.scratch();
    let mut out = Vec::new();
    m.matches(r#"{"a":"x","a":"y"}"#, &mut s, &mut out).unwrap();
    assert_eq!(out, vec![0]);
}

#[test]
fn many_rules_one_pass() {
    let patterns: Vec<Pattern> = (0..2000)
        .map(|i| parse(&serde_json::json!({"detail": {"id": [format!("id-{i}")]}})).unwrap())
        .chain([parse(&serde_json::json!({"detail": {"id": [{"prefix": "id-1"}]}})).unwrap()])
        .collect();
    let m = Matcher::new(&patterns);
    let mut s = m.scratch();
    let mut out = Vec::new();
    m.matches(r#"{"detail":{"id":"id-1234"}}"#, &mut s, &mut out)
        .unwrap();
    assert_eq!(out, vec![1234, 2000]);
    m.matches(r#"{"detail":{"id":"id-7"}}"#, &mut s, &mut out)
        .unwrap();
    assert_eq!(out, vec![7]);
}

#[test]
fn explanations_name_the_failing_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"detail":{"state":["running"]}}"#,
            r#"{"detail":{"state":"terminated"}}"#,
            r#"detail.state: expected one of ["running"], got "terminated""#,
        ),
        (
            r#"{"detail":{"size":[{"numeric":[">",100]}]}}"#,
            r#"{"detail":{"size":"12"}}"#,
            r#"detail.size: numeric > 100 needs a number, got "12" (a string)"#,
        ),
        (
            r#"{"source":["aws.s3"],"detail":{"state":["x"]}}"#,
            r#"{"source":"aws.s3"}"#,
            r#"detail.state: expected one of ["x"], but the field is missing"#,
        ),
        (
            r#"{"a":[{"exists":false}]}"#,
            r#"{"a":3}"#,
            "a: expected the field to be absent, got 3",
        ),
        (
            r#"{"e":{"f":["Anna"],"l":["Jones"]}}"#,
            r#"{"e":[{"f":"Anna","l":"Smith"},{"f":"Peter","l":"Jones"}]}"#,
            "e.f, e.l: no single array element satisfies all of these fields together",
        ),
        (
            r#"{"$or":[{"a":["1"]},{"b":["2"],"c":["3"]}]}"#,
            r#"{"b":"2","c":"4"}"#,
            r#"$or branch 2 of 2: c: expected one of ["3"], got "4""#,
        ),
        (
            r#"{"k":[{"prefix":"a"},{"numeric":["=",1]}]}"#,
            r#"{"k":["x","y"]}"#,
            r#"k: expected one of [prefix "a", numeric = 1], got ["x", "y"]"#,
        ),
    ];
    for (p, e, want) in cases {
        let pat = parse(&serde_json::from_str(p).unwrap()).unwrap();
        let got = explain(&pat, &serde_json::from_str(e).unwrap());
        assert_eq!(got.as_deref(), Some(*want), "{p} | {e}");
    }
}

// ---- Property test: the compiled matcher agrees with the reference evaluator. ----

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("c"), Just("a.b")].prop_map(str::to_owned)
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop_oneof![
            Just("x"),
            Just("xy"),
            Just("X"),
            Just("yx"),
            Just(""),
            Just("10.0.0.1"),
            // Escaped when the event is written out: quotes, backslashes, control characters
            // (`\u0001`), and a character outside the BMP.
            Just("\"x\\y\n\u{1}\u{e9}\u{1F600}]}")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
        (-3i32..4).prop_map(|n| serde_json::json!(n)),
        Just(serde_json::json!(1.5)),
        Just(serde_json::json!(-2.5e-7)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ]
}

fn arb_event() -> impl Strategy<Value = Value> {
    let leaf = arb_scalar();
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .prop_map(|v| match v {
        Value::Object(_) => v,
        other => serde_json::json!({"a": other}),
    })
}

fn arb_match_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        arb_scalar(),
        prop_oneof![Just("x"), Just("y"), Just("")].prop_map(|s| serde_json::json!({"prefix": s})),
        prop_oneof![Just("x"), Just("y")].prop_map(|s| serde_json::json!({"suffix": s})),
        prop_oneof![Just("x"), Just("XY")]
            .prop_map(|s| serde_json::json!({"equals-ignore-case": s})),
        prop_oneof![Just("x*"), Just("*y"), Just("*")]
            .prop_map(|s| serde_json::json!({"wildcard": s})),
        prop_oneof![
            Just(serde_json::json!("x")),
            Just(serde_json::json!([1, 2])),
            Just(serde_json::json!({"prefix": "x"}))
        ]
        .prop_map(|v| serde_json::json!({"anything-but": v})),
        (-3i32..4).prop_map(|n| serde_json::json!({"numeric": [">", n]})),
        any::<bool>().prop_map(|b| serde_json::json!({"exists": b})),
        Just(serde_json::json!({"cidr": "10.0.0.0/8"})),
    ]
}

fn arb_pattern() -> impl Strategy<Value = Value> {
    let leaf = prop::collection::vec(arb_match_value(), 1..3)
        .prop_map(Value::Array)
        .boxed();
    let level = |inner: BoxedStrategy<Value>| {
        prop::collection::vec((arb_key(), inner), 1..3)
            .prop_map(|kv| Value::Object(kv.into_iter().collect()))
            .boxed()
    };
    let obj = level(leaf.clone());
    let nested = level(prop_oneof![leaf, obj].boxed());
    prop_oneof![
        3 => nested.clone(),
        1 => (nested.clone(), nested).prop_map(|(a, b)| serde_json::json!({"$or": [a, b]})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn compiled_agrees_with_reference(
        patterns in prop::collection::vec(arb_pattern(), 1..4),
        events in prop::collection::vec(arb_event(), 1..4),
    ) {
        let parsed: Vec<Pattern> = patterns.iter().filter_map(|p| parse(p).ok()).collect();
        let m = Matcher::new(&parsed);
        let mut s = m.scratch();
        let mut out = Vec::new();
        for ev in &events {
            let text = ev.to_string();
            m.matches(&text, &mut s, &mut out).unwrap();
            let want: Vec<RuleId> = parsed
                .iter()
                .enumerate()
                .filter(|(_, p)| reference_matches(p, ev))
                .map(|(i, _)| i as RuleId)
                .collect();
            prop_assert_eq!(&out, &want, "event {}", text);
            m.matches_valid(&ValidJson::of(ev), &mut s, &mut out).unwrap();
            prop_assert_eq!(&out, &want, "written event {}", text);
        }
    }

    #[test]
    fn scanner_never_panics_and_agrees_with_serde(text in "\\PC{0,40}") {
        let pat = parse(&serde_json::json!({"a": [{"exists": true}]})).unwrap();
        let m = Matcher::new([&pat]);
        let mut s = m.scratch();
        let mut out = Vec::new();
        let ours = m.matches(&text, &mut s, &mut out).is_ok();
        let serde = serde_json::from_str::<serde_json::Map<String, Value>>(&text).is_ok();
        prop_assert_eq!(ours, serde, "{:?}", text);
    }
}

#[test]
fn string_and_number_skipping_agrees_with_serde_at_every_offset() {
    // Lengths past the scanner's short-string loop, so that both ways of finding a string's
    // end (a byte loop, then memchr and a check for control characters) meet every special.
    let pat = parse(&serde_json::json!({"k": [{"exists": true}]})).unwrap();
    let m = Matcher::new([&pat]);
    let mut s = m.scratch();
    let mut out = Vec::new();
    let specials = [
        "\"", "\\\\", "\\n", "\\u00e9", "\u{1}", "\t", "é", "\\", "\\x",
    ];
    for len in 0..40 {
        for at in 0..=len {
            for sp in specials {
                let body: String = (0..len)
                    .map(|i| {
                        if i == at {
                            sp.to_owned()
                        } else {
                            "a".to_owned()
                        }
                    })
                    .collect();
                for text in [
                    format!(r#"{{"skip":"{body}","k":1}}"#),
                    format!(r#"{{"k":"{body}"}}"#),
                ] {
                    let ours = m.matches(&text, &mut s, &mut out).is_ok();
                    let serde =
                        serde_json::from_str::<serde_json::Map<String, Value>>(&text).is_ok();
                    assert_eq!(ours, serde, "{text:?}");
                    if ours {
                        assert_eq!(out, vec![0], "{text:?}");
                    }
                }
            }
            let digits: String = (0..len).map(|i| if i == at { 'x' } else { '7' }).collect();
            for text in [
                format!(r#"{{"skip":-1.{digits}e+1,"k":1}}"#),
                format!(r#"{{"skip":1{digits},"k":1}}"#),
                format!(r#"{{"k":{digits}5}}"#),
            ] {
                let ours = m.matches(&text, &mut s, &mut out).is_ok();
                let serde = serde_json::from_str::<serde_json::Map<String, Value>>(&text).is_ok();
                assert_eq!(ours, serde, "{text:?}");
            }
        }
    }
}

// ---- The skipping paths: values no pattern names are stepped over and validated. ----

/// Skipped values of every shape the scanner has a path for: escapes in strings (quotes,
/// backslashes, `\uXXXX`, surrogate pairs, brackets inside strings), nested arrays of objects,
/// numbers in every form, literals, and whitespace between every token.
const SKIPPED_VALUES: &[&str] = &[
    r#""a\"b""#,
    r#""\\""#,
    r#""\\\"""#,
    r#""x\\""#,
    r#""\u00e9\u00E9 \ud83d\ude00 \u0022 \u005c""#,
    r#""\/\b\f\n\r\t""#,
    r#""}],{[ \" ]""#,
    "\"é ü 😀\"",
    r#"[[{"x": -122.42, "y": 37.8e-3, "z": 0}, {"x": 1E+2, "y": [[], {}]}], [], [[]], {}]"#,
    r#"{"a": {"b": {"c": [1, [2, [3, {"d": "\"}"}]]]}}, "e": []}"#,
    "-0",
    "0.5",
    "-1.25e10",
    "1E-7",
    "-0.0e+0",
    "123456789012345678901234567890",
    "12345678901234567.123456789012345678e-12",
    "[true, false, null, [true], {\"t\": false}]",
    " \t\n\r[ 1 ,\n{ \"a\" : [ ] , \"b\" :\t\"c\" } ,\r\"\\\\\" ] \n",
];

#[test]
fn skipped_values_of_every_shape_are_stepped_over_exactly() {
    for value in SKIPPED_VALUES {
        // Before and after the named field, and one level down.
        check(
            r#"{"k":["x"]}"#,
            &format!(r#"{{"skip":{value},"k":"x"}}"#),
            true,
        );
        check(
            r#"{"k":["x"]}"#,
            &format!(r#"{{"k":"x","skip":{value}}}"#),
            true,
        );
        check(
            r#"{"k":["y"]}"#,
            &format!(r#"{{"skip":{value},"k":"x"}}"#),
            false,
        );
        check(
            r#"{"d":{"k":["x"]}}"#,
            &format!(r#"{{"d":{{"skip":{value},"k":"x","more":{value}}}}}"#),
            true,
        );
        // A named path into the value walks its objects and skips what it does not name.
        check(
            r#"{"skip":{"zz":[{"exists":false}]},"k":["x"]}"#,
            &format!(r#"{{"skip":{value},"k":"x"}}"#),
            true,
        );
    }
}

/// Whether the matcher and serde_json agree that `text` is (in)valid, and when it is valid,
/// whether the matcher agrees with the reference evaluator.
#[track_caller]
fn agrees_on_validity(m: &Matcher, pat: &Pattern, text: &str) {
    let mut s = m.scratch();
    let mut out = Vec::new();
    let ours = m.matches(text, &mut s, &mut out);
    match serde_json::from_str::<serde_json::Map<String, Value>>(text) {
        Ok(map) => {
            assert!(ours.is_ok(), "refused valid {text:?}: {ours:?}");
            let want = reference_matches(pat, &Value::Object(map));
            assert_eq!(
                !out.is_empty(),
                want,
                "compiled and reference disagree: {text:?}"
            );
        }
        Err(e) => assert!(ours.is_err(), "accepted invalid {text:?} ({e})"),
    }
}

#[test]
fn malformed_skipped_values_are_refused_at_every_byte() {
    // One value with every path of the skipper, corrupted and truncated at each of its bytes.
    let value = r#"[{"x": -122.42e+1, "y": [0.5, 1E-7, true, false, null], "s": "a\"\\\u00e9\ud83d\ude00/]}"}, [[], {}], -0]"#;
    let patterns = [
        // The value is skipped whole.
        r#"{"k":["x"]}"#,
        // The scanner walks into the value's objects for `n` and skips their other members.
        r#"{"skip":{"n":[{"exists":false}]},"k":["x"]}"#,
    ];
    let replacements = [
        b'"', b'\\', b',', b':', b'[', b']', b'{', b'}', b' ', b'0', b'-', b'+', b'.', b'e', b'x',
        b'u', b'/', 0x01, b'\n',
    ];
    for pattern in patterns {
        let pat = parse(&serde_json::from_str::<Value>(pattern).unwrap()).unwrap();
        let m = Matcher::new([&pat]);
        let event = |v: &[u8]| {
            let mut e = br#"{"skip":"#.to_vec();
            e.extend_from_slice(v);
            e.extend_from_slice(br#","k":"x"}"#);
            String::from_utf8(e).ok()
        };
        let whole = event(value.as_bytes()).unwrap();
        agrees_on_validity(&m, &pat, &whole);
        for at in 0..value.len() {
            // The value cut short, the event going on after it; and the event cut there.
            if let Some(text) = event(&value.as_bytes()[..at]) {
                agrees_on_validity(&m, &pat, &text);
            }
            if let Some(text) = whole.get(..r#"{"skip":"#.len() + at) {
                agrees_on_validity(&m, &pat, text);
            }
            for &r in &replacements {
                let mut v = value.as_bytes().to_vec();
                v[at] = r;
                if let Some(text) = event(&v) {
                    agrees_on_validity(&m, &pat, &text);
                }
            }
        }
    }
}

#[test]
fn numbers_in_skipped_values_follow_the_json_grammar() {
    let pat = parse(&serde_json::json!({"k": ["x"]})).unwrap();
    let m = Matcher::new([&pat]);
    for number in [
        "0", "-0", "7", "-7", "10", "0.0", "-0.5", "1.25", "1e5", "1E5", "1e+5", "1e-5",
        "-1.5E-07", "00", "01", "-01", "+1", "1.", ".5", "-.5", "1e", "1e+", "1E-", "1.e5", "1.5e",
        "--1", "1-", "1.5.5", "1e5e5", "1e5.5", "0x10", "-", "1 2", "Infinity", "NaN",
    ] {
        for text in [
            format!(r#"{{"skip":{number},"k":"x"}}"#),
            format!(r#"{{"skip":[{number}],"k":"x"}}"#),
            format!(r#"{{"skip":{{"n":{number}}},"k":"x"}}"#),
            format!(r#"{{"k":"x","skip":{number}}}"#),
        ] {
            agrees_on_validity(&m, &pat, &text);
        }
    }
}

#[test]
fn numbers_are_read_correctly_rounded_by_both_matchers() {
    // Found by fuzzing: 21-digit integers one ULP apart must compare the same whichever
    // parser read them.
    check(
        r#"{"n":[888888888888888888888]}"#,
        r#"{"n":888888888888888877776}"#,
        888_888_888_888_888_888_888f64 == 888_888_888_888_888_877_776f64,
    );
    check(
        r#"{"n":[0.1]}"#,
        r#"{"n":0.1000000000000000055511151231257827}"#,
        true,
    );
}
