"""An HTTP handler, as behind API Gateway: GET /hello?name=... (payload format 2.0) and
ANY /items/{id} (payload format 1.0, the REST API's shape)."""
import json


def handler(event, context):
    if event.get("version") == "2.0":
        name = (event.get("queryStringParameters") or {}).get("name", "world")
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": f"hello, {name}\n"}
    item = (event.get("pathParameters") or {}).get("id")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"id": item, "method": event["httpMethod"]}),
    }
