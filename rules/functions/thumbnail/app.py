"""An upload handler: for each new JPEG, record a thumbnail in the thumbnails bucket.

It receives the event's `detail` (the rule's `input_path: $.detail`): EventBridge's S3
shape, `{"bucket": {"name": ...}, "object": {"key": ..., "size": ...}}`. The
"thumbnail" is a JSON note standing in for an image, so the example needs no imaging
library; the handler's shape is what matters.
"""
import json
import os

BUCKET_DIR = os.environ.get("BUCKET_DIR", "/tmp/trigd-bucket")
made = 0  # survives between invocations of a warm environment


def lambda_handler(event, context):
    global made
    bucket = event["bucket"]["name"]
    key = event["object"]["key"]
    if event["object"].get("size", 0) <= 0:
        raise ValueError(f"s3://{bucket}/{key} is empty")
    thumb = os.path.join(BUCKET_DIR, "thumbnails", bucket, key + ".json")
    os.makedirs(os.path.dirname(thumb), exist_ok=True)
    with open(thumb, "w") as f:
        json.dump({"source": f"s3://{bucket}/{key}", "width": 128}, f)
    made += 1
    print(f"thumbnail for s3://{bucket}/{key} ({made} made by this environment)")
    return {"thumbnail": thumb}
