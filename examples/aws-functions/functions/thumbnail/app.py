"""A Lambda handler for S3 uploads, unchanged whether it runs on Lambda or under trigd.

It receives EventBridge's S3 event detail (the rule's `input_path: $.detail`), reads the
object, and writes a "thumbnail" (here: a short text standing in for the resized image)
under THUMBNAIL_PREFIX in the same bucket. boto3 reaches AWS, or the emulator trigd was
pointed at (trigd passes its AWS_ENDPOINT_URL on to handlers).
"""
import os

import boto3

s3 = boto3.client("s3")  # created once per environment, reused while it stays warm
PREFIX = os.environ.get("THUMBNAIL_PREFIX", "thumbnails/")


def lambda_handler(event, context):
    bucket = event["bucket"]["name"]
    key = event["object"]["key"]
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    thumb = PREFIX + key
    s3.put_object(Bucket=bucket, Key=thumb, Body=f"thumbnail of {len(body)} bytes".encode())
    print(f"s3://{bucket}/{key} -> s3://{bucket}/{thumb}")
    return {"bucket": bucket, "thumbnail": thumb}
