"""Init job of the compose stack: the landing and output buckets, the SQS queue and the
landing bucket's ObjectCreated notification to it (LocalStack; idempotent)."""

from __future__ import annotations

import json
import os
import time

import boto3

LANDING = os.environ.get("LANDING_BUCKET", "therapy-claims-landing")
OUT = os.environ.get("OUT_BUCKET", "therapy-claims-out")
QUEUE = os.environ.get("QUEUE_NAME", "therapy-claims-landing")

for _attempt in range(60):  # wait for the S3 + SQS service
    try:
        boto3.client("s3").list_buckets()
        break
    except Exception:
        time.sleep(2)
s3, sqs = boto3.client("s3"), boto3.client("sqs")
for b in (LANDING, OUT):
    try:
        s3.create_bucket(Bucket=b)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
s3.put_bucket_notification_configuration(
    Bucket=LANDING,
    NotificationConfiguration={
        "QueueConfigurations": [
            {
                "QueueArn": arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "landing/"}]}},
            }
        ]
    },
)
print(json.dumps({"buckets": [LANDING, OUT], "queue": url, "notification": arn}))
