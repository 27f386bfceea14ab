//! The compiled matcher: every rule's pattern in one structure, so that the cost of matching
//! an event depends on the event and on the rules it matches, not on how many rules exist.
//!
//! How it works:
//! * Each distinct field path gets a [`FieldIndex`]: hash maps for exact values (strings,
//!   numbers by value, true/false/null) and for case-folded values, byte tries for prefixes and
//!   suffixes (plain and case-folded), and a short list of the operators that cannot be indexed
//!   (wildcard, anything-but, numeric, cidr), which are evaluated one by one.
//! * The event is scanned lazily ([`scan`](super::scan)); each named scalar is looked up in its
//!   field's index, which yields the conditions it satisfies.
//! * Each branch counts its satisfied conditions. A branch whose count reaches its number of
//!   required conditions is then checked for `exists: false` conditions and, only when several
//!   of its conditions were satisfied inside arrays, for array consistency.
//!
//! The semantics are those of [`reference`](super::reference); property tests hold the two
//! together.

use rustc_hash::FxHashMap;

use super::ast::{Alt, Literal, Pattern, fold_case};
use super::eval::{Leaf, LeafView, alt_matches};
use super::reference::{Step, choose};
use super::scan::{self, EventError, PathTrie, ScanScratch, Sink, ValidJson};

/// Identifies a rule: its index in the sequence given to [`Matcher::new`].
pub type RuleId = u32;

type CondId = u32;

/// All rules' patterns, compiled together.
#[derive(Debug)]
pub struct Matcher {
    trie: PathTrie,
    fields: Vec<FieldIndex>,
    conds: Vec<CondMeta>,
    branches: Vec<BranchMeta>,
    /// Branches with no condition that needs a value (only `exists: false` forms): they are
    /// checked for every event, because no value will ever count towards them.
    always: Vec<u32>,
    rules: usize,
}

#[derive(Debug)]
struct CondMeta {
    branch: u32,
    field: u32,
    /// Has an `exists: false` alternative: satisfied when the field is absent.
    allows_absence: bool,
}

#[derive(Debug)]
struct BranchMeta {
    rule: RuleId,
    /// How many conditions must be satisfied by a value.
    required: u32,
    /// This branch's conditions are `first_cond .. first_cond + cond_count`.
    first_cond: CondId,
    cond_count: u32,
}

#[derive(Debug, Default)]
struct FieldIndex {
    exact_str: FxHashMap<Box<str>, Vec<CondId>>,
    exact_num: FxHashMap<u64, Vec<CondId>>,
    exact_true: Vec<CondId>,
    exact_false: Vec<CondId>,
    exact_null: Vec<CondId>,
    prefix: ByteTrie,
    suffix: ByteTrie,
    folded_exact: FxHashMap<Box<str>, Vec<CondId>>,
    folded_prefix: ByteTrie,
    folded_suffix: ByteTrie,
    /// `exists: true`: any value satisfies.
    any: Vec<CondId>,
    /// Evaluated one by one.
    others: Vec<(Alt, CondId)>,
    /// Whether any index here needs the case-folded value.
    folds: bool,
}

/// A trie over bytes; each node lists the conditions whose affix ends there.
#[derive(Debug, Default)]
struct ByteTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Default)]
struct TrieNode {
    edges: Vec<(u8, u32)>,
    hits: Vec<CondId>,
}

impl ByteTrie {
    fn insert(&mut self, bytes: impl Iterator<Item = u8>, cond: CondId) {
        if self.nodes.is_empty() {
            self.nodes.push(TrieNode::default());
        }
        let mut node = 0usize;
        for b in bytes {
            node = match self.nodes[node].edges.binary_search_by_key(&b, |e| e.0) {
                Ok(i) => self.nodes[node].edges[i].1 as usize,
                Err(i) => {
                    let id = self.nodes.len();
                    self.nodes.push(TrieNode::default());
                    self.nodes[node].edges.insert(i, (b, id as u32));
                    id
                }
            };
        }
        self.nodes[node].hits.push(cond);
    }

    /// Calls `f` with the conditions of every affix that `bytes` starts with.
    #[inline]
    fn walk(&self, bytes: impl Iterator<Item = u8>, mut f: impl FnMut(CondId)) {
        let Some(root) = self.nodes.first() else {
            return;
        };
        let mut node = root;
        node.hits.iter().for_each(|&c| f(c));
        for b in bytes {
            match node.edges.binary_search_by_key(&b, |e| e.0) {
                Ok(i) => node = &self.nodes[node.edges[i].1 as usize],
                Err(_) => return,
            }
            node.hits.iter().for_each(|&c| f(c));
        }
    }

    fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// A number's key in the exact-number index: equal values, equal keys (`-0` is `0`).
fn num_key(n: f64) -> u64 {
    if n == 0.0 { 0 } else { n.to_bits() }
}

impl Matcher {
    /// Compiles the patterns; rule `i` is the `i`-th pattern.
    pub fn new<'p>(patterns: impl IntoIterator<Item = &'p Pattern>) -> Matcher {
        let mut m = Matcher {
            trie: PathTrie::new(),
            fields: Vec::new(),
            conds: Vec::new(),
            branches: Vec::new(),
            always: Vec::new(),
            rules: 0,
        };
        for (rule, pattern) in patterns.into_iter().enumerate() {
            m.rules += 1;
            for branch in &pattern.branches {
                m.add_branch(rule as RuleId, &branch.conditions);
            }
        }
        m
    }

    fn add_branch(&mut self, rule: RuleId, conditions: &[super::ast::Condition]) {
        let branch = self.branches.len() as u32;
        let first_cond = self.conds.len() as CondId;
        let mut required = 0;
        for cond in conditions {
            let id = self.conds.len() as CondId;
            let next_field = self.fields.len() as u32;
            let field = self.trie.insert(&cond.path, next_field);
            if field == next_field {
                self.fields.push(FieldIndex::default());
            }
            let allows_absence = cond.allows_absence();
            if !allows_absence {
                required += 1;
            }
            self.conds.push(CondMeta {
                branch,
                field,
                allows_absence,
            });
            let index = &mut self.fields[field as usize];
            for alt in &cond.alts {
                index.add(alt, id);
            }
        }
        if required == 0 {
            self.always.push(branch);
        }
        self.branches.push(BranchMeta {
            rule,
            required,
            first_cond,
            cond_count: conditions.len() as u32,
        });
    }

    /// Fresh per-event working memory for this matcher; reuse it across events.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            generation: 0,
            cond_gen: vec![0; self.conds.len()],
            cond_free: vec![false; self.conds.len()],
            branch_gen: vec![0; self.branches.len()],
            branch_hits: vec![0; self.branches.len()],
            field_gen: vec![0; self.fields.len()],
            rule_gen: vec![0; self.rules],
            touched: Vec::new(),
            trails: Vec::new(),
            trail_pool: Vec::new(),
            fold_buf: String::new(),
            scan: ScanScratch::default(),
        }
    }

    /// The rules whose patterns match `event` (JSON text), in ascending order, into `out`.
    /// Every byte of `event` is checked: malformed text is refused, never half-matched.
    pub fn matches(
        &self,
        event: &str,
        scratch: &mut Scratch,
        out: &mut Vec<RuleId>,
    ) -> Result<(), EventError> {
        self.match_text::<false>(event, scratch, out)
    }

    /// As [`Matcher::matches`], for text trigd serialised itself: what no pattern names is
    /// skipped by its structure, without checking its grammar a second time.
    pub fn matches_valid(
        &self,
        event: &ValidJson,
        scratch: &mut Scratch,
        out: &mut Vec<RuleId>,
    ) -> Result<(), EventError> {
        self.match_text::<true>(event, scratch, out)
    }

    fn match_text<const TRUSTED: bool>(
        &self,
        event: &str,
        scratch: &mut Scratch,
        out: &mut Vec<RuleId>,
    ) -> Result<(), EventError> {
        out.clear();
        scratch.begin(self);
        let mut sink = MatchSink {
            m: self,
            s: &mut *scratch,
        };
        let mut scan_scratch = std::mem::take(&mut sink.s.scan);
        let result = scan::scan::<TRUSTED>(event, &self.trie, &mut sink, &mut scan_scratch);
        scratch.scan = scan_scratch;
        result?;
        self.finish(scratch, out);
        Ok(())
    }

    fn finish(&self, s: &mut Scratch, out: &mut Vec<RuleId>) {
        let touched = std::mem::take(&mut s.touched);
        for &b in touched.iter().chain(&self.always) {
            let meta = &self.branches[b as usize];
            let counted = if s.branch_gen[b as usize] == s.generation {
                s.branch_hits[b as usize]
            } else {
                0
            };
            if counted == meta.required
                && s.rule_gen[meta.rule as usize] != s.generation
                && self.branch_holds(meta, s)
            {
                s.rule_gen[meta.rule as usize] = s.generation;
                out.push(meta.rule);
            }
        }
        s.touched = touched;
        out.sort_unstable();
    }

    /// The checks left once every required condition has a value: absences, then arrays.
    fn branch_holds(&self, meta: &BranchMeta, s: &Scratch) -> bool {
        let conds = meta.first_cond..meta.first_cond + meta.cond_count;
        let mut in_arrays = 0;
        for c in conds.clone() {
            let cm = &self.conds[c as usize];
            let satisfied = s.cond_gen[c as usize] == s.generation;
            if cm.allows_absence && !satisfied && s.field_gen[cm.field as usize] == s.generation {
                return false;
            }
            if satisfied && !s.cond_free[c as usize] {
                in_arrays += 1;
            }
        }
        if in_arrays < 2 {
            return true;
        }
        let candidates: Vec<Vec<&[Step]>> = conds
            .filter(|&c| s.cond_gen[c as usize] == s.generation && !s.cond_free[c as usize])
            .map(|c| {
                s.trails
                    .iter()
                    .filter(|t| t.0 == c)
                    .map(|t| &s.trail_pool[t.1 as usize..(t.1 + t.2) as usize])
                    .collect()
            })
            .collect();
        choose(&candidates, &mut Vec::new())
    }
}

impl FieldIndex {
    fn add(&mut self, alt: &Alt, c: CondId) {
        match alt {
            Alt::Exact(Literal::Str(s)) => push(&mut self.exact_str, s.as_str().into(), c),
            Alt::Exact(Literal::Num(n)) => self.exact_num.entry(num_key(*n)).or_default().push(c),
            Alt::Exact(Literal::Bool(true)) => self.exact_true.push(c),
            Alt::Exact(Literal::Bool(false)) => self.exact_false.push(c),
            Alt::Exact(Literal::Null) => self.exact_null.push(c),
            Alt::Prefix(p) => self.prefix.insert(p.bytes(), c),
            Alt::Suffix(p) => self.suffix.insert(p.bytes().rev(), c),
            Alt::EqualsIgnoreCase(p) => {
                self.folds = true;
                push(&mut self.folded_exact, p.as_str().into(), c);
            }
            Alt::PrefixIgnoreCase(p) => {
                self.folds = true;
                self.folded_prefix.insert(p.bytes(), c);
            }
            Alt::SuffixIgnoreCase(p) => {
                self.folds = true;
                self.folded_suffix.insert(p.bytes().rev(), c);
            }
            Alt::Exists(true) => self.any.push(c),
            // Satisfied by absence, which is decided per branch.
            Alt::Exists(false) => {}
            other => self.others.push((other.clone(), c)),
        }
    }
}

fn push(map: &mut FxHashMap<Box<str>, Vec<CondId>>, key: Box<str>, c: CondId) {
    map.entry(key).or_default().push(c);
}

/// Per-event working memory. Entries are valid only when their generation is current, so
/// nothing is cleared between events.
#[derive(Debug)]
pub struct Scratch {
    generation: u32,
    cond_gen: Vec<u32>,
    /// A condition satisfied by a value outside any array agrees with every other choice.
    cond_free: Vec<bool>,
    branch_gen: Vec<u32>,
    branch_hits: Vec<u32>,
    field_gen: Vec<u32>,
    rule_gen: Vec<u32>,
    touched: Vec<u32>,
    /// `(condition, start, len)` into `trail_pool`: the array trails that satisfied it.
    trails: Vec<(CondId, u32, u32)>,
    trail_pool: Vec<Step>,
    fold_buf: String,
    scan: ScanScratch,
}

impl Scratch {
    fn begin(&mut self, m: &Matcher) {
        if self.cond_gen.len() != m.conds.len() || self.rule_gen.len() != m.rules {
            *self = m.scratch();
        }
        if self.generation == u32::MAX {
            let fresh = m.scratch();
            *self = Scratch {
                scan: std::mem::take(&mut self.scan),
                ..fresh
            };
        }
        self.generation += 1;
        self.touched.clear();
        self.trails.clear();
        self.trail_pool.clear();
    }

    #[inline]
    fn hit(&mut self, m: &Matcher, c: CondId, trail: &[Step]) {
        let ci = c as usize;
        let g = self.generation;
        if self.cond_gen[ci] != g {
            self.cond_gen[ci] = g;
            self.cond_free[ci] = trail.is_empty();
            let cm = &m.conds[ci];
            if !cm.allows_absence {
                let b = cm.branch as usize;
                if self.branch_gen[b] != g {
                    self.branch_gen[b] = g;
                    self.branch_hits[b] = 0;
                    self.touched.push(cm.branch);
                }
                self.branch_hits[b] += 1;
            }
        } else if self.cond_free[ci] {
            return;
        } else if trail.is_empty() {
            self.cond_free[ci] = true;
            return;
        }
        if !trail.is_empty() {
            let start = self.trail_pool.len() as u32;
            self.trail_pool.extend_from_slice(trail);
            self.trails.push((c, start, trail.len() as u32));
        }
    }
}

struct MatchSink<'m, 's> {
    m: &'m Matcher,
    s: &'s mut Scratch,
}

impl Sink for MatchSink<'_, '_> {
    fn leaf(&mut self, field: u32, leaf: Leaf<'_>, trail: &[Step]) {
        let m = self.m;
        let s = &mut *self.s;
        s.field_gen[field as usize] = s.generation;
        let idx = &m.fields[field as usize];
        let hits = |s: &mut Scratch, list: &[CondId]| {
            for &c in list {
                s.hit(m, c, trail);
            }
        };
        match leaf {
            Leaf::Str(v) => {
                if let Some(list) = idx.exact_str.get(v) {
                    hits(s, list);
                }
                if !idx.prefix.is_empty() {
                    idx.prefix.walk(v.bytes(), |c| s.hit(m, c, trail));
                }
                if !idx.suffix.is_empty() {
                    idx.suffix.walk(v.bytes().rev(), |c| s.hit(m, c, trail));
                }
                if idx.folds {
                    let mut buf = std::mem::take(&mut s.fold_buf);
                    fold_into(v, &mut buf);
                    if let Some(list) = idx.folded_exact.get(buf.as_str()) {
                        hits(s, list);
                    }
                    if !idx.folded_prefix.is_empty() {
                        idx.folded_prefix.walk(buf.bytes(), |c| s.hit(m, c, trail));
                    }
                    if !idx.folded_suffix.is_empty() {
                        idx.folded_suffix
                            .walk(buf.bytes().rev(), |c| s.hit(m, c, trail));
                    }
                    s.fold_buf = buf;
                }
            }
            Leaf::Num(n) => {
                if let Some(list) = idx.exact_num.get(&num_key(n)) {
                    hits(s, list);
                }
            }
            Leaf::Bool(true) => hits(s, &idx.exact_true),
            Leaf::Bool(false) => hits(s, &idx.exact_false),
            Leaf::Null => hits(s, &idx.exact_null),
        }
        hits(s, &idx.any);
        if !idx.others.is_empty() {
            let view = LeafView::new(leaf);
            for (alt, c) in &idx.others {
                if s.cond_gen[*c as usize] == s.generation && s.cond_free[*c as usize] {
                    continue;
                }
                if alt_matches(alt, &view) {
                    s.hit(m, *c, trail);
                }
            }
        }
    }
}

fn fold_into(s: &str, buf: &mut String) {
    buf.clear();
    if s.is_ascii() {
        buf.extend(s.bytes().map(|b| b.to_ascii_lowercase() as char));
    } else {
        buf.push_str(&fold_case(s));
    }
}
