#!/usr/bin/env python3
"""Writes sigv4_botocore.json: SigV4 signatures computed by botocore with a frozen clock.

The Swift signer in Sources/Storage must reproduce every URL and Authorization header byte for byte.
Run from the repository root after scripts/python-env.sh:
    .venv/bin/python tests/StorageTests/Fixtures/make_sigv4_fixtures.py
"""
import datetime
import hashlib
import json
import os
from unittest import mock

import botocore
import botocore.auth
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

FROZEN = datetime.datetime(2026, 11, 30, 12, 34, 56)
KEY_ID = "AKIDSWARMEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSWARMKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLE//token+with/odd=chars"

# Endpoints as an operator would configure them: AWS, Cloudflare R2 (region "auto"), MinIO on a custom port.
ENDPOINTS = [
    {"name": "aws", "endpoint": "https://s3.eu-central-1.amazonaws.com", "region": "eu-central-1"},
    {"name": "r2", "endpoint": "https://0123456789abcdef.r2.cloudflarestorage.com", "region": "auto"},
    {"name": "minio", "endpoint": "http://127.0.0.1:9000", "region": "us-east-1"},
    {"name": "minio-https-port", "endpoint": "https://minio.example.net:9443", "region": "us-west-2"},
]
KEYS = [
    "swarmui/job-1/image.png",
    "a b+c.png",
    "dir/sub/ünïcødé 图像.mp4",
    "odd!'()*;:@&=$,~_-.webm",
    "trailing/slash/",
]


def client(endpoint, region, path_style, token=None):
    session = botocore.session.get_session()
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if path_style else "virtual"},
        request_checksum_calculation="when_required",
    )
    return session.create_client(
        "s3", region_name=region, endpoint_url=endpoint, config=config,
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, aws_session_token=token)


def presigned_cases():
    cases = []
    for ep in ENDPOINTS:
        for path_style in (True, False):
            for index, key in enumerate(KEYS):
                token = TOKEN if index == 1 else None
                s3 = client(ep["endpoint"], ep["region"], path_style, token)
                base = {
                    "endpoint": ep["endpoint"], "region": ep["region"], "bucket": "swarm-outputs",
                    "path_style": path_style, "key": key, "session_token": token,
                }
                operations = [
                    ("get", "get_object", {}, 3600),
                    ("put", "put_object", {"ContentType": "video/mp4"} if index % 2 else {}, 900),
                    ("part", "upload_part", {"UploadId": "2~Ab/c+d=", "PartNumber": index + 1}, 604800),
                ]
                for label, operation, extra, expires in operations:
                    url = s3.generate_presigned_url(
                        operation, Params={"Bucket": "swarm-outputs", "Key": key, **extra}, ExpiresIn=expires)
                    cases.append({
                        **base,
                        "name": f"{ep['name']}-{'path' if path_style else 'vhost'}-{label}-{index}",
                        "operation": label,
                        "expires": expires,
                        "content_type": extra.get("ContentType"),
                        "upload_id": extra.get("UploadId"),
                        "part_number": extra.get("PartNumber"),
                        "url": url,
                    })
    return cases


def signed_cases():
    """Requests the control plane sends itself, signed in the Authorization header."""
    complete = (
        '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        '<Part><PartNumber>1</PartNumber><ETag>"etag-1"</ETag></Part>'
        '<Part><PartNumber>2</PartNumber><ETag>"etag-2"</ETag></Part>'
        '</CompleteMultipartUpload>'
    )
    requests = [
        ("create", "POST", {"uploads": ""}, {"Content-Type": "video/mp4"}, ""),
        ("complete", "POST", {"uploadId": "2~Ab/c+d="}, {"Content-Type": "application/xml"}, complete),
        ("abort", "DELETE", {"uploadId": "2~Ab/c+d="}, {}, ""),
        ("head", "HEAD", {}, {}, ""),
    ]
    cases = []
    for ep in ENDPOINTS:
        for path_style in (True, False):
            if not path_style and ep["name"] == "minio":
                continue  # botocore (and Storage) address a bucket on an IP endpoint by path only
            for index, key in enumerate(KEYS[:3]):
                token = TOKEN if index == 2 else None
                scheme, host = ep["endpoint"].split("://")
                encoded_key = botocore.utils.percent_encode(key, safe="/~")
                if path_style:
                    url = f"{scheme}://{host}/swarm-outputs/{encoded_key}"
                else:
                    url = f"{scheme}://swarm-outputs.{host}/{encoded_key}"
                for label, method, query, headers, body in requests:
                    query_string = "&".join(
                        f"{name}={botocore.utils.percent_encode(value)}" for name, value in query.items())
                    request = AWSRequest(
                        method=method, url=url + ("?" + query_string if query_string else ""),
                        headers=dict(headers), data=body.encode())
                    credentials = Credentials(KEY_ID, SECRET, token)
                    botocore.auth.S3SigV4Auth(credentials, "s3", ep["region"]).add_auth(request)
                    cases.append({
                        "name": f"{ep['name']}-{'path' if path_style else 'vhost'}-{label}-{index}",
                        "operation": label,
                        "endpoint": ep["endpoint"], "region": ep["region"], "bucket": "swarm-outputs",
                        "path_style": path_style, "key": key, "session_token": token,
                        "content_type": headers.get("Content-Type"),
                        "upload_id": query.get("uploadId"),
                        "body": body,
                        "body_sha256": hashlib.sha256(body.encode()).hexdigest(),
                        "x_amz_date": request.headers["X-Amz-Date"],
                        "x_amz_content_sha256": request.headers["X-Amz-Content-SHA256"],
                        "authorization": request.headers["Authorization"],
                    })
    return cases


def main():
    with mock.patch("botocore.auth.get_current_datetime", return_value=FROZEN):
        fixtures = {
            "generator": f"botocore {botocore.__version__}, tests/StorageTests/Fixtures/make_sigv4_fixtures.py",
            "date": FROZEN.strftime("%Y%m%dT%H%M%SZ"),
            "access_key_id": KEY_ID,
            "secret_access_key": SECRET,
            "presigned": presigned_cases(),
            "signed": signed_cases(),
        }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sigv4_botocore.json")
    with open(path, "w", encoding="utf-8") as out:
        json.dump(fixtures, out, indent=1, ensure_ascii=False)
        out.write("\n")
    print(f"wrote {len(fixtures['presigned'])} presigned and {len(fixtures['signed'])} signed cases to {path}")


if __name__ == "__main__":
    main()
