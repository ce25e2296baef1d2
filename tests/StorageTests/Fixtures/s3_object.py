#!/usr/bin/env python3
"""Prints "<bytes> <sha256>" of an object as boto3 reads it: s3_object.py ENDPOINT BUCKET KEY.

The storage integration tests use it to check, with an independent client, what the Swift uploader stored.
"""
import hashlib
import sys

import boto3

endpoint, bucket, key = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
body = s3.get_object(Bucket=bucket, Key=key)["Body"]
digest = hashlib.sha256()
size = 0
for chunk in iter(lambda: body.read(1 << 20), b""):
    digest.update(chunk)
    size += len(chunk)
print(size, digest.hexdigest())
