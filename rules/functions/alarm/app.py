"""The world's worst alarm clock: every weekday morning, write WAKE UP into a bucket.

On AWS this would put an object into S3; here the bucket is a local directory
(BUCKET_DIR), so the example runs with no AWS account.
"""
import datetime
import os

BUCKET_DIR = os.environ.get("BUCKET_DIR", "/tmp/trigd-bucket")


def lambda_handler(event, context):
    now = datetime.datetime.now(datetime.timezone.utc)
    key = f"alarms/{now:%Y-%m-%dT%H%M%S}-{context.aws_request_id[:8]}.txt"
    path = os.path.join(BUCKET_DIR, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(event.get("message", "WAKE UP") + "\n")
    print(f"wrote {key} ({context.get_remaining_time_in_millis()} ms to spare)")
    return {"key": key}
