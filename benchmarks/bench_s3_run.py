"""Benchmark: the main job on the embedded generator with the S3 store (moto's server over HTTP), then a
rerun. Verifies 1 image + 1 thumbnail object per product whose sha256 metadata matches its bytes, that every
linked-catalog URL maps to an existing key, and that the rerun uploads no image or thumbnail.

Usage: python benchmarks/bench_s3_run.py [--catalog data/catalog.json] [--parallel 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _objects(s3, bucket: str, prefix: str) -> dict[str, dict]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj
    return out


def _verify(s3, bucket: str, key: str) -> bool:
    obj = s3.get_object(Bucket=bucket, Key=key)
    body = obj["Body"].read()
    return (
        obj["Metadata"].get("sha256") == hashlib.sha256(body).hexdigest()
        and obj["ContentType"] == "image/jpeg"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default=str(PROJECT / "data" / "catalog.json"))
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REDIS_URL")}
        env.update(
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench-secret",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=endpoint,
            CATALOG_S3_BUCKET="catalog-bench",
            CATALOG_S3_PREFIX="demo",
        )
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
        )
        s3.create_bucket(Bucket="catalog-bench")
        with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp:
            env["DAGSTER_HOME"] = tmp
            walls = []
            for label in ("full run", "rerun"):
                before = _objects(s3, "catalog-bench", "demo/")
                t0 = time.perf_counter()
                proc = subprocess.run(
                    [
                        str(BIN / "catalog-images"),
                        "run",
                        "--catalog",
                        args.catalog,
                        "--parallel",
                        str(args.parallel),
                    ],
                    cwd=tmp,
                    env=env,
                    capture_output=True,
                    text=True,
                )
                walls.append(time.perf_counter() - t0)
                if proc.returncode != 0:
                    sys.exit(f"{label} failed:\n{proc.stderr[-4000:]}")
                after = _objects(s3, "catalog-bench", "demo/")
                media = [k for k in after if k.startswith(("demo/images/", "demo/thumbnails/"))]
                uploaded = [
                    k
                    for k in media
                    if k not in before
                    or before[k]["LastModified"] != after[k]["LastModified"]
                    or before[k]["ETag"] != after[k]["ETag"]
                ]
                print(f"{label}: wall {walls[-1]:.1f}s, image+thumbnail uploads {len(uploaded)}", flush=True)
            images = [k for k in after if k.startswith("demo/images/")]
            thumbs = [k for k in after if k.startswith("demo/thumbnails/")]
            with ThreadPoolExecutor(8) as pool:
                verified = sum(pool.map(lambda k: _verify(s3, "catalog-bench", k), images + thumbs))
            linked = json.loads(
                s3.get_object(Bucket="catalog-bench", Key="demo/catalog/linked_catalog.json")["Body"].read()
            )
            urls = [p["image"]["url"] for p in linked if p["image"].get("url")]
            base = f"{endpoint}/catalog-bench/"
            dangling = [u for u in urls if not u.startswith(base) or u[len(base) :] not in after]
            print(
                f"objects: {len(images)} images, {len(thumbs)} thumbnails; sha256 metadata matches bytes for "
                f"{verified}/{len(images) + len(thumbs)}; linked catalog: {len(urls)} URLs, {len(dangling)} dangling"
            )
            print(f"full run {walls[0]:.1f}s, rerun {walls[1]:.1f}s")
    finally:
        moto.terminate()
        moto.wait(10)


if __name__ == "__main__":
    main()
