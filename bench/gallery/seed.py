"""Writes the gallery bench's rows as COPY text to stdout: `users`, `generations` or `images`.

1,000,000 public images across 10,000 users by default (BENCH_IMAGES, BENCH_USERS), created over
the last 30 days with ids that are UUIDv7 of their creation time (as Easel makes them), prompts of
6-10 words from a 2,000-word vocabulary, and likes spread like real ones (most none, a few many).
Deterministic: the same seed gives the same rows."""

import os
import random
import sys
import time
import uuid

USERS = int(os.environ.get("BENCH_USERS", "10000"))
IMAGES = int(os.environ.get("BENCH_IMAGES", "1000000"))
DAYS = 30
rng = random.Random(20261124)
SYLLABLES = ["ka", "lo", "mi", "ren", "su", "ta", "vo", "zel", "an", "bri", "cor", "dun", "el", "fa", "gil", "hu",
             "is", "jo", "kel", "lum", "mor", "nas", "or", "pel", "qua", "ris", "sol", "tor", "ul", "ves", "wyn", "xa"]
# 2,000 distinct made-up words: what the search benchmark looks for is their frequency, not meaning.
WORDS = sorted({"".join(rng.choice(SYLLABLES) for _ in range(3)) for _ in range(4000)})[:2000]
NOW_MS = int(time.time() * 1000)


def user_id(n):
    return uuid.UUID(int=(0x0192 << 112) | n)


def generation_id(n):
    return uuid.UUID(int=(0x0193 << 112) | n)


def uuid7(ms):
    rand = rng.getrandbits(74)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return uuid.UUID(int=value)


def ts(ms):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}+00"


what = sys.argv[1]
out = sys.stdout
if what == "users":
    for n in range(USERS):
        out.write(f"{user_id(n)}\tartist{n}\tArtist {n}\t{ts(NOW_MS - 90 * 86400000)}\n")
elif what == "generations":
    for n in range(USERS):
        out.write(f"{generation_id(n)}\t{user_id(n)}\teasel-sketch\tbench\t1:1\t512\t512\t16\t1\tpublic\t"
                  f"succeeded\t100\t16\t{ts(NOW_MS)}\t{ts(NOW_MS)}\n")
elif what == "images":
    per_user = IMAGES // USERS
    for n in range(IMAGES):
        owner = n % USERS
        ms = NOW_MS - rng.randrange(DAYS * 86400000)
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 10)))
        likes = int(rng.paretovariate(1.2)) - 1 if rng.random() < 0.3 else 0
        model = "easel-sketch" if n % 4 else "easel-canvas-pro"
        out.write(f"{uuid7(ms)}\t{user_id(owner)}\t{generation_id(owner)}\t{n // USERS}\t{model}\t{prompt}\t512\t512\t"
                  f"{n}\tpublic\t{'%064x' % n}\t{'%064x' % (n + 1)}\timage/png\t100000\tf\t{min(likes, 100000)}\t{ts(ms)}\n")
elif what == "word":
    # A word of middling frequency, for the search query.
    print(WORDS[7])
