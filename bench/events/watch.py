"""bench/events: what open event streams cost the database, in commits (each query the server makes
outside a transaction is one).

idle:    N queued generations (no job runner), a stream open on each: commits per second with the
         streams against the same moment without them.
running: N generations run start to end twice, without streams and with a stream on each from
         submission to the end: the extra commits per stream, and the events each stream got.

Usage: watch.py BASE_URL TOKEN STREAMS SECONDS PSQL DATABASE_URL (idle | running)
"""
import http.client
import json
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse

base, token, streams, seconds, psql, database_url, phase = sys.argv[1:8]
streams, seconds = int(streams), float(seconds)
host = urlparse(base)
headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}


def connection():
    return http.client.HTTPConnection(host.hostname, host.port, timeout=300)


def sql(query):
    return subprocess.check_output([psql, "-At", "-X", database_url, "-c", query]).decode().strip()


def commits():
    # The query itself commits once; callers take differences, so it cancels out.
    return int(sql("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))


def submit(label):
    ids = []
    for i in range(streams):
        c = connection()
        body = {"prompt": f"bench events {label} {i}", "model": "easel-sketch"}
        c.request("POST", "/v1/generations", json.dumps(body), headers)
        reply = c.getresponse()
        answer = json.loads(reply.read())
        if reply.status != 202:
            sys.exit(f"submit refused: {answer}")
        ids.append(answer["id"])
    return ids


def follow(generation, events):
    c = connection()
    c.request("GET", f"/v1/generations/{generation}/events", headers=headers)
    text = c.getresponse().read().decode()
    events.append(text.count("\nevent: generation\n"))


def watched():
    c = connection()
    c.request("GET", "/metrics")
    lines = c.getresponse().read().decode().splitlines()
    return next(int(l.split()[1]) for l in lines if l.startswith("generation_changes_watched "))


def open_streams(ids, events):
    threads = [threading.Thread(target=follow, args=(g, events), daemon=True) for g in ids]
    for t in threads:
        t.start()
    return threads


if phase == "idle":
    ids = submit("idle")
    before = commits(); time.sleep(seconds); baseline = (commits() - before) / seconds
    open_streams(ids, [])
    deadline = time.time() + 30
    while watched() < streams:
        if time.time() > deadline:
            sys.exit("the streams did not all open")
        time.sleep(0.1)
    before = commits(); time.sleep(seconds); with_streams = (commits() - before) / seconds
    print(f"idle: {streams} streams on queued generations: {with_streams:.1f} commits/s against "
          f"{baseline:.1f} without them ({(with_streams - baseline) / streams:.3f} per stream per second)")
else:
    def life(label, with_streams):
        before = commits()
        ids = submit(label)
        events = []
        threads = open_streams(ids, events) if with_streams else []
        for t in threads:
            t.join()
        active = f"SELECT count(*) FROM generations WHERE prompt LIKE 'bench events {label} %' " \
                 "AND status IN ('queued', 'starting', 'processing')"
        while sql(active) != "0":
            time.sleep(0.2)
        return commits() - before, events
    alone, _ = life("alone", False)
    watched_life, events = life("watched", True)
    extra = (watched_life - alone) / streams
    print(f"running: {streams} generations start to end: {watched_life} commits with a stream on each, "
          f"{alone} without ({extra:.1f} more per stream, which got {sum(events) / len(events):.1f} events)")
