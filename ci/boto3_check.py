"""Real-client check of the fakes with boto3: run against `stampede fakes serve`.

    eval "$(stampede fakes serve &)"   # or: export the lines it prints
    python3 ci/boto3_check.py

Covers what the fakes serve so far: S3 (list, get with range, head, put, errors), STS
(AssumeRole, GetCallerIdentity, cross-tenant denial), SQS (send, batch, receive, delete,
dead-letter redrive, errors), Glue (databases, tables, paginated partitions) and IMDSv2 (token, role, credentials).
Exits non-zero on the first failed check.
"""

import os
import sys

import boto3
import botocore
from botocore.config import Config
from botocore.utils import InstanceMetadataFetcher

REGION = os.environ["AWS_REGION"]
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"})


def client(service, **kwargs):
    return boto3.client(service, region_name=REGION, config=NO_RETRIES, **kwargs)


def expect_error(code, fn):
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}"
        return
    raise AssertionError(f"expected {code}, got success")


def check_s3():
    s3 = client("s3")
    bucket = os.environ["STAMPEDE_LAKE_BUCKET"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="telemetry/")["Contents"]]
    assert keys and all(k.startswith("telemetry/") for k in keys), keys
    head = s3.head_object(Bucket=bucket, Key=keys[0])
    size = head["ContentLength"]
    body = s3.get_object(Bucket=bucket, Key=keys[0], Range="bytes=0-3")["Body"].read()
    assert body == b"PAR1", body
    tail = s3.get_object(Bucket=bucket, Key=keys[0], Range=f"bytes={size - 4}-")["Body"].read()
    assert tail == b"PAR1", tail
    s3.put_object(Bucket=bucket, Key="results/boto3.txt", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="results/boto3.txt")["Body"].read() == b"hello"
    expect_error("NoSuchKey", lambda: s3.get_object(Bucket=bucket, Key="missing"))
    expect_error("NoSuchBucket", lambda: s3.list_objects_v2(Bucket="no-such-bucket"))
    wrong = client("s3", aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"], aws_secret_access_key="wrong-secret")
    expect_error("SignatureDoesNotMatch", lambda: wrong.list_objects_v2(Bucket=bucket))
    print("s3: ok")


def check_sts():
    sts = client("sts")
    me = sts.get_caller_identity()
    assert me["Account"] == "100000000001", me
    role = os.environ["STAMPEDE_LAKE_ROLE_ARN"]
    creds = sts.assume_role(RoleArn=role, RoleSessionName="boto3-check")["Credentials"]
    lake = client(
        "sts",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    wrong = client(
        "sts", aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"], aws_secret_access_key="wrong-secret"
    )
    expect_error("SignatureDoesNotMatch", wrong.get_caller_identity)
    other = role.replace(":300000000000:", ":300000000001:")
    expect_error("AccessDenied", lambda: lake.assume_role(RoleArn=other, RoleSessionName="cross"))
    s3 = client(
        "s3",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    s3.list_objects_v2(Bucket=os.environ["STAMPEDE_LAKE_BUCKET"])
    expect_error("AccessDenied", lambda: s3.list_objects_v2(Bucket="lake-00001"))
    print("sts: ok")


def check_sqs():
    sqs = client("sqs")
    dlq = sqs.create_queue(QueueName="boto3-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = '{"deadLetterTargetArn":"%s","maxReceiveCount":"1"}' % dlq_arn
    queue = sqs.create_queue(
        QueueName="boto3-tasks", Attributes={"VisibilityTimeout": "0", "RedrivePolicy": redrive}
    )["QueueUrl"]
    assert sqs.get_queue_url(QueueName="boto3-tasks")["QueueUrl"] == queue
    sent = sqs.send_message(QueueUrl=queue, MessageBody="hello")
    assert sent["MD5OfMessageBody"] == "5d41402abc4b2a76b9719d911017c592", sent
    batch = sqs.send_message_batch(
        QueueUrl=queue, Entries=[{"Id": "a", "MessageBody": "x"}, {"Id": "b", "MessageBody": "y"}]
    )
    assert len(batch["Successful"]) == 2, batch
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["hello", "x", "y"], got
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=got[1]["ReceiptHandle"])
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=got[2]["ReceiptHandle"])
    # "hello" was received once and not deleted: the next receive moves it to the DLQ.
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    dead = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert [m["Body"] for m in dead] == ["hello"], dead
    expect_error("AWS.SimpleQueueService.NonExistentQueue", lambda: sqs.get_queue_url(QueueName="nope"))
    print("sqs: ok")


def check_glue():
    glue = client("glue")
    lake_account = os.environ["STAMPEDE_LAKE_ROLE_ARN"].split(":")[4]
    dbs = glue.get_databases(CatalogId=lake_account)["DatabaseList"]
    assert [d["Name"] for d in dbs] == ["telemetry_lake"], dbs
    table = glue.get_table(CatalogId=lake_account, DatabaseName="telemetry_lake", Name="telemetry")["Table"]
    assert table["StorageDescriptor"]["Location"] == "s3://%s/telemetry/" % os.environ["STAMPEDE_LAKE_BUCKET"]
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]][:2] == ["ts", "src_ip"]
    pages = glue.get_paginator("get_partitions").paginate(
        CatalogId=lake_account, DatabaseName="telemetry_lake", TableName="telemetry", PaginationConfig={"PageSize": 1}
    )
    partitions = [p["Values"][0] for page in pages for p in page["Partitions"]]
    assert partitions == ["0", "1"], partitions
    expect_error(
        "EntityNotFoundException",
        lambda: glue.get_table(CatalogId=lake_account, DatabaseName="telemetry_lake", Name="nope"),
    )
    print("glue: ok")


def check_imds():
    fetcher = InstanceMetadataFetcher(
        timeout=2, num_attempts=1, base_url=os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
    )
    creds = fetcher.retrieve_iam_role_credentials()
    assert creds.get("role_name") == "stampede-worker", creds
    assert creds["access_key"].startswith("ASIA"), creds
    print("imds: ok")


if __name__ == "__main__":
    check_s3()
    check_sts()
    check_sqs()
    check_glue()
    check_imds()
    print("boto3: all checks passed")
