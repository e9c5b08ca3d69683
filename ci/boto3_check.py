"""Real-client check of the fakes with boto3: run against `stampede fakes serve`.

    eval "$(stampede fakes serve &)"   # or: export the lines it prints
    python3 ci/boto3_check.py

The fakes are strict, like AWS: the system's user (account 100000000001) reaches a lake only
through the lake's role, assumed with the tenant's external id. Covered, each as boto3 sees it:

- s3_own: the system user's own bucket: create (BucketAlreadyOwnedByYou again,
  BucketAlreadyExists for a lake's name), head, list (its own buckets only), put, get, delete
  (BucketNotEmpty while objects remain); NoSuchKey, NoSuchBucket, SignatureDoesNotMatch.
- sts: GetCallerIdentity of the user and of a lake session; AssumeRole of lake 0's role refused
  without its external id, with a wrong one, with lake 0's id for lake 1's role, above the role's
  MaxSessionDuration, and from the lake session to lake 1's role.
- s3_lake: the lake session lists lake 0's files, heads them and reads ranges; it may not write
  or delete there, list lake 1's bucket, list buckets or create one.
- glue: the lake session reads its own catalog with and without CatalogId (database, table,
  paginated partitions); EntityNotFoundException; lake 1's catalog is AccessDeniedException.
- sqs: queues, batches, receive, delete and dead-letter redrive as the system user.
- sqs_cross_account: a lake session (another account) may not receive, delete, change the
  visibility of, purge or send to the system's queue, nor find it by owner; its own queue of the
  same name is another queue.
- isolation: neither the system user nor an instance-role session from IMDS reads, lists or
  writes a lake's bucket or reads a lake's catalog.
- tokens: a session's key without its token, and with another session's token, per service.
- signing: requests signed 20 minutes before or after the server's clock, and requests scoped
  to another region, per service.
- imds: IMDSv2 token, role name and session keys, and who those keys are.

Not covered: expired credentials (the shortest session is 900 s, too long to wait for) and a
credential scope naming another service (boto3 always signs with the client's own service).
No call is retried. Exits non-zero on the first failed check.
"""

import contextlib
import datetime
import os
import types
from unittest import mock

import boto3
import botocore.auth
import botocore.exceptions
from botocore.config import Config
from botocore.utils import InstanceMetadataFetcher

REGION = os.environ["AWS_REGION"]
# max_attempts=1: botocore retries nothing, not even the S3 errors it would otherwise retry.
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"})

SYSTEM = {
    "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
    "aws_session_token": None,
}
SYSTEM_ACCOUNT = "100000000001"
SYSTEM_ARN = f"arn:aws:iam::{SYSTEM_ACCOUNT}:user/stampede-system"
RESULTS_BUCKET = "stampede-results"

# Lake 0, whose role and tenant's external id `fakes serve` exports.
LAKE_ROLE = os.environ["STAMPEDE_LAKE_ROLE_ARN"]
LAKE_ACCOUNT = LAKE_ROLE.split(":")[4]
LAKE_EXTERNAL_ID = os.environ["STAMPEDE_LAKE_EXTERNAL_ID"]
LAKE_BUCKET = os.environ["STAMPEDE_LAKE_BUCKET"]
LAKE_KEYS = ["telemetry/part-00000.parquet", "telemetry/part-00001.parquet"]
DATABASE, TABLE = "telemetry_lake", "telemetry"

# Lake 1: another account, of another tenant with another external id.
OTHER_LAKE_ACCOUNT = "300000000001"
OTHER_LAKE_ROLE = LAKE_ROLE.replace(f":{LAKE_ACCOUNT}:", f":{OTHER_LAKE_ACCOUNT}:")
OTHER_LAKE_BUCKET = "lake-00001"

# Outside us-east-1 boto3 must name the region when creating a bucket.
WHERE = {} if REGION == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": REGION}}


def client(service, creds=SYSTEM, region=REGION):
    """A client of `service` signing with `creds` (a dict of boto3's credential arguments)."""
    return boto3.client(service, region_name=region, config=NO_RETRIES, **creds)


def with_token(creds, token):
    """`creds` with another session token, or none (`token=None`)."""
    return {**creds, "aws_session_token": token}


def assume(role, session, creds=SYSTEM, **extra):
    """AssumeRole as `creds`; the session's credentials, for `client`."""
    c = client("sts", creds).assume_role(RoleArn=role, RoleSessionName=session, **extra)["Credentials"]
    return {
        "aws_access_key_id": c["AccessKeyId"],
        "aws_secret_access_key": c["SecretAccessKey"],
        "aws_session_token": c["SessionToken"],
    }


def lake_session(session):
    """A session of lake 0's reader role, as the system user with the tenant's external id."""
    return assume(LAKE_ROLE, session, ExternalId=LAKE_EXTERNAL_ID)


def imds_credentials():
    """The instance role's credentials from IMDSv2, as botocore's fetcher returns them."""
    fetcher = InstanceMetadataFetcher(
        timeout=2, num_attempts=1, base_url=os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
    )
    return fetcher.retrieve_iam_role_credentials()


def imds_session(fetched):
    """The fetcher's credentials, for `client`."""
    return {
        "aws_access_key_id": fetched["access_key"],
        "aws_secret_access_key": fetched["secret_key"],
        "aws_session_token": fetched["token"],
    }


def expect_error(code, fn):
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e.response['Error'].get('Message')}"
        return
    raise AssertionError(f"expected {code}, got success")


# One call per service that a lake session may make: refused only for how it was signed.
PROBES = {
    "s3": lambda c: c.list_objects_v2(Bucket=LAKE_BUCKET),
    "sts": lambda c: c.get_caller_identity(),
    "sqs": lambda c: c.create_queue(QueueName="boto3-probe"),
    "glue": lambda c: c.get_databases(),
}


def refused(code, service, creds, region=REGION):
    """The service's probe, signed with `creds` for `region`, is refused with `code`."""
    try:
        expect_error(code, lambda: PROBES[service](client(service, creds, region)))
    except AssertionError as e:
        raise AssertionError(f"{service}: {e}") from None


@contextlib.contextmanager
def signing_clock(offset):
    """Requests made inside are signed as if the clock were `offset` away. SigV4Auth.add_auth
    reads the time once: from botocore.auth.get_current_datetime, or, in older botocore, from
    datetime.datetime.utcnow(); only that one read is shifted."""
    if hasattr(botocore.auth, "get_current_datetime"):
        now = botocore.auth.get_current_datetime
        with mock.patch("botocore.auth.get_current_datetime", lambda *a, **k: now(*a, **k) + offset):
            yield
        return

    class Shifted(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return datetime.datetime.utcnow() + offset

    with mock.patch("botocore.auth.datetime", types.SimpleNamespace(datetime=Shifted)):
        yield


def check_s3_own():
    """The system user's own bucket, from creation to deletion."""
    s3 = client("s3")
    s3.create_bucket(Bucket=RESULTS_BUCKET, **WHERE)
    expect_error("BucketAlreadyOwnedByYou", lambda: s3.create_bucket(Bucket=RESULTS_BUCKET, **WHERE))
    expect_error("BucketAlreadyExists", lambda: s3.create_bucket(Bucket=OTHER_LAKE_BUCKET, **WHERE))
    s3.head_bucket(Bucket=RESULTS_BUCKET)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert RESULTS_BUCKET in names and not any(n.startswith("lake-") for n in names), names
    s3.put_object(Bucket=RESULTS_BUCKET, Key="results/boto3.txt", Body=b"hello")
    assert s3.get_object(Bucket=RESULTS_BUCKET, Key="results/boto3.txt")["Body"].read() == b"hello"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=RESULTS_BUCKET)["Contents"]]
    assert keys == ["results/boto3.txt"], keys
    expect_error("NoSuchKey", lambda: s3.get_object(Bucket=RESULTS_BUCKET, Key="missing"))
    expect_error("NoSuchBucket", lambda: s3.list_objects_v2(Bucket="no-such-bucket"))
    wrong = client("s3", {**SYSTEM, "aws_secret_access_key": "wrong-secret"})
    expect_error("SignatureDoesNotMatch", lambda: wrong.list_objects_v2(Bucket=RESULTS_BUCKET))
    expect_error("BucketNotEmpty", lambda: s3.delete_bucket(Bucket=RESULTS_BUCKET))
    s3.delete_object(Bucket=RESULTS_BUCKET, Key="results/boto3.txt")
    s3.delete_bucket(Bucket=RESULTS_BUCKET)
    expect_error("NoSuchBucket", lambda: s3.list_objects_v2(Bucket=RESULTS_BUCKET))
    print("s3_own: ok")


def check_sts(lake):
    """Who the user and a lake session are, and the AssumeRoles the roles' trust refuses."""
    sts = client("sts")
    me = sts.get_caller_identity()
    assert (me["Account"], me["Arn"]) == (SYSTEM_ACCOUNT, SYSTEM_ARN), me
    assert lake["aws_access_key_id"].startswith("ASIA"), lake["aws_access_key_id"]
    them = client("sts", lake).get_caller_identity()
    role_name = LAKE_ROLE.split("/")[-1]
    assert them["Account"] == LAKE_ACCOUNT, them
    assert them["Arn"] == f"arn:aws:sts::{LAKE_ACCOUNT}:assumed-role/{role_name}/boto3-check", them
    expect_error("AccessDenied", lambda: sts.assume_role(RoleArn=LAKE_ROLE, RoleSessionName="no-id"))
    expect_error(
        "AccessDenied",
        lambda: sts.assume_role(RoleArn=LAKE_ROLE, RoleSessionName="wrong-id", ExternalId="wrong-external-id"),
    )
    expect_error(
        "AccessDenied",
        lambda: sts.assume_role(RoleArn=OTHER_LAKE_ROLE, RoleSessionName="cross", ExternalId=LAKE_EXTERNAL_ID),
    )
    expect_error(
        "ValidationError",
        lambda: assume(LAKE_ROLE, "long", ExternalId=LAKE_EXTERNAL_ID, DurationSeconds=7200),
    )
    expect_error("AccessDenied", lambda: assume(OTHER_LAKE_ROLE, "cross", creds=lake))
    wrong = client("sts", {**SYSTEM, "aws_secret_access_key": "wrong-secret"})
    expect_error("SignatureDoesNotMatch", wrong.get_caller_identity)
    print("sts: ok")


def check_s3_lake(lake):
    """The lake session reads its lake's files and nothing else, and writes nothing."""
    s3 = client("s3", lake)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=LAKE_BUCKET, Prefix="telemetry/")["Contents"]]
    assert keys == LAKE_KEYS, keys
    size = s3.head_object(Bucket=LAKE_BUCKET, Key=keys[0])["ContentLength"]
    body = s3.get_object(Bucket=LAKE_BUCKET, Key=keys[0], Range="bytes=0-3")["Body"].read()
    assert body == b"PAR1", body
    tail = s3.get_object(Bucket=LAKE_BUCKET, Key=keys[0], Range=f"bytes={size - 4}-")["Body"].read()
    assert tail == b"PAR1", tail
    expect_error("AccessDenied", lambda: s3.put_object(Bucket=LAKE_BUCKET, Key="results/boto3.txt", Body=b"x"))
    expect_error("AccessDenied", lambda: s3.delete_object(Bucket=LAKE_BUCKET, Key=keys[0]))
    expect_error("AccessDenied", lambda: s3.list_objects_v2(Bucket=OTHER_LAKE_BUCKET))
    expect_error("AccessDenied", s3.list_buckets)
    expect_error("AccessDenied", lambda: s3.create_bucket(Bucket="stampede-lake-scratch", **WHERE))
    after = [o["Key"] for o in s3.list_objects_v2(Bucket=LAKE_BUCKET)["Contents"]]
    assert after == LAKE_KEYS, after
    print("s3_lake: ok")


def read_catalog(glue, **catalog):
    """Lake 0's catalog as `glue` reads it, with `catalog` = {} or {"CatalogId": ...}."""
    dbs = glue.get_databases(**catalog)["DatabaseList"]
    assert [d["Name"] for d in dbs] == [DATABASE], dbs
    table = glue.get_table(DatabaseName=DATABASE, Name=TABLE, **catalog)["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{LAKE_BUCKET}/telemetry/", table
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]][:2] == ["ts", "src_ip"], table
    pages = glue.get_paginator("get_partitions").paginate(
        DatabaseName=DATABASE, TableName=TABLE, PaginationConfig={"PageSize": 1}, **catalog
    )
    partitions = [p["Values"][0] for page in pages for p in page["Partitions"]]
    assert partitions == ["0", "1"], partitions


def check_glue(lake):
    """The lake session reads its own catalog and not another lake's."""
    glue = client("glue", lake)
    read_catalog(glue)
    read_catalog(glue, CatalogId=LAKE_ACCOUNT)
    expect_error(
        "EntityNotFoundException",
        lambda: glue.get_table(CatalogId=LAKE_ACCOUNT, DatabaseName=DATABASE, Name="nope"),
    )
    expect_error(
        "AccessDeniedException",
        lambda: glue.get_table(CatalogId=OTHER_LAKE_ACCOUNT, DatabaseName=DATABASE, Name=TABLE),
    )
    print("glue: ok")


def check_sqs():
    """The system user's queues: send, batch, receive, delete, dead-letter redrive."""
    sqs = client("sqs")
    dlq = sqs.create_queue(QueueName="boto3-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = '{"deadLetterTargetArn":"%s","maxReceiveCount":"1"}' % dlq_arn
    queue = sqs.create_queue(
        QueueName="boto3-tasks", Attributes={"VisibilityTimeout": "0", "RedrivePolicy": redrive}
    )["QueueUrl"]
    assert queue.endswith(f"/{SYSTEM_ACCOUNT}/boto3-tasks"), queue
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


def check_sqs_cross_account(lake):
    """A lake session (account 300000000000) can do nothing with the system's queue."""
    sqs, other = client("sqs"), client("sqs", lake)
    queue = sqs.create_queue(QueueName="boto3-private")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="private")
    handle = sqs.receive_message(QueueUrl=queue)["Messages"][0]["ReceiptHandle"]
    expect_error("AccessDenied", lambda: other.receive_message(QueueUrl=queue))
    expect_error("AccessDenied", lambda: other.delete_message(QueueUrl=queue, ReceiptHandle=handle))
    expect_error(
        "AccessDenied",
        lambda: other.change_message_visibility(QueueUrl=queue, ReceiptHandle=handle, VisibilityTimeout=0),
    )
    expect_error("AccessDenied", lambda: other.purge_queue(QueueUrl=queue))
    expect_error("AccessDenied", lambda: other.send_message(QueueUrl=queue, MessageBody="intruder"))
    # The owner's message is untouched and alone: made visible again, it is all there is.
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=handle, VisibilityTimeout=0)
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["private"], got
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=got[0]["ReceiptHandle"])
    expect_error(
        "AWS.SimpleQueueService.NonExistentQueue",
        lambda: other.get_queue_url(QueueName="boto3-private", QueueOwnerAWSAccountId=SYSTEM_ACCOUNT),
    )
    own = other.create_queue(QueueName="boto3-private")["QueueUrl"]
    assert own != queue and own.endswith(f"/{LAKE_ACCOUNT}/boto3-private"), own
    assert other.get_queue_url(QueueName="boto3-private")["QueueUrl"] == own
    print("sqs_cross_account: ok")


def lake_refused(creds):
    """`creds` may not read, list or write lake 0's bucket, nor read its catalog."""
    s3, glue = client("s3", creds), client("glue", creds)
    expect_error("AccessDenied", lambda: s3.list_objects_v2(Bucket=LAKE_BUCKET))
    expect_error("AccessDenied", lambda: s3.get_object(Bucket=LAKE_BUCKET, Key=LAKE_KEYS[0]))
    expect_error("AccessDenied", lambda: s3.put_object(Bucket=LAKE_BUCKET, Key="results/boto3.txt", Body=b"x"))
    expect_error("AccessDeniedException", lambda: glue.get_databases(CatalogId=LAKE_ACCOUNT))
    expect_error(
        "AccessDeniedException",
        lambda: glue.get_table(CatalogId=LAKE_ACCOUNT, DatabaseName=DATABASE, Name=TABLE),
    )


def check_isolation():
    """The system's own principals reach a lake only through the lake's role."""
    lake_refused(SYSTEM)
    lake_refused(imds_session(imds_credentials()))
    print("isolation: ok")


def check_tokens(lake):
    """A session's key is refused without its token and with another session's."""
    other = lake_session("boto3-other")
    assert other["aws_session_token"] != lake["aws_session_token"]
    missing = {
        "s3": "InvalidAccessKeyId",
        "sts": "InvalidClientTokenId",
        "sqs": "InvalidClientTokenId",
        "glue": "UnrecognizedClientException",
    }
    swapped = {
        "s3": "InvalidToken",
        "sts": "InvalidClientTokenId",
        "sqs": "InvalidClientTokenId",
        "glue": "UnrecognizedClientException",
    }
    for service, probe in PROBES.items():
        probe(client(service, other))
        refused(missing[service], service, with_token(lake, None))
        refused(swapped[service], service, with_token(lake, other["aws_session_token"]))
    print("tokens: ok")


def check_signing(lake):
    """Requests signed 20 minutes off the server's clock, or for another region, are refused."""
    skewed = {
        "s3": "RequestTimeTooSkewed",
        "sts": "SignatureDoesNotMatch",
        "sqs": "SignatureDoesNotMatch",
        "glue": "InvalidSignatureException",
    }
    scoped = {
        "s3": "AuthorizationHeaderMalformed",
        "sts": "SignatureDoesNotMatch",
        "sqs": "SignatureDoesNotMatch",
        "glue": "InvalidSignatureException",
    }
    for service, probe in PROBES.items():
        probe(client(service, lake))
        for minutes in (-20, 20):
            with signing_clock(datetime.timedelta(minutes=minutes)):
                refused(skewed[service], service, lake)
        refused(scoped[service], service, lake, region="us-west-2")
    print("signing: ok")


def check_imds():
    """IMDSv2 hands out the instance role's session keys, and they are that role's."""
    c = imds_credentials()
    assert c.get("role_name") == "stampede-worker", c
    assert c["access_key"].startswith("ASIA"), c
    me = client("sts", imds_session(c)).get_caller_identity()
    assert me["Account"] == SYSTEM_ACCOUNT and ":assumed-role/stampede-worker/" in me["Arn"], me
    print("imds: ok")


if __name__ == "__main__":
    lake = lake_session("boto3-check")
    check_s3_own()
    check_sts(lake)
    check_s3_lake(lake)
    check_glue(lake)
    check_sqs()
    check_sqs_cross_account(lake)
    check_isolation()
    check_tokens(lake)
    check_signing(lake)
    check_imds()
    print("boto3: all checks passed")
