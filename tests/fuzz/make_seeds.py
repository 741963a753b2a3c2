#!/usr/bin/env python3
"""tests/fuzz/make_seeds.py - writes the seed corpora in tests/fuzz/corpus/.

The seeds are hand-picked: the DESIGN.md shapes and the edges around them.
They are committed; this script is how they were made and how to change
them (edit, run, review the diff). Fuzzing never writes here: tests/fuzz/run
works on a copy.
"""
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

MSG = (b'{"id":"1732230000000-0","room":"lobby","type":"message",'
       b'"from":"alice","text":"hi","ts":1732230000000}')
TYPING = b'{"room":"lobby","type":"typing","from":"bob","ts":1732230000100}'
PRESENCE = (b'{"room":"lobby","type":"presence","online":["alice","bob"],'
            b'"ts":1732230000200}')

EVENT = {
    "message": MSG,
    "typing": TYPING,
    "presence": PRESENCE,
    # the append script's cjson writes an empty Lua table as {}
    "presence-empty-object":
        b'{"room":"r","type":"presence","online":{},"ts":0}',
    "presence-unsorted":
        b'{"room":"r","type":"presence","online":["zed","Al","al.b","_"],'
        b'"ts":5}',
    "message-escapes":
        b'{"id":"1-1","room":"a-b_c","type":"message","from":"A.b-c_9",'
        b'"text":"\\u00e9 \\ud83d\\ude00 \\"q\\" \\\\ \\/ \\n\\t\\u0001",'
        b'"ts":1}',
    "message-utf8-raw":
        '{"id":"2-0","room":"x","type":"message","from":"u","text":'
        '"\u00e9\u20ac\U0001f600","ts":2}'.encode(),
    "message-id-without-seq":
        b'{"id":"1732230000000","room":"lobby","type":"message",'
        b'"from":"alice","text":"x","ts":1732230000000}',
    "message-ts-double":
        b'{"id":"0-0","room":"lobby","type":"message","from":"alice",'
        b'"text":"x","ts":1.73223e12}',
    "message-field-order-and-extra":
        b' {"ts":7,"text":"x","extra":[1,{"a":null}],"from":"alice",'
        b'"type":"message","room":"lobby","id":"00012-0003"}\r\n',
    "message-max-names":
        b'{"id":"18446744073709551615-18446744073709551615","room":"' +
        b"a" * 64 + b'","type":"message","from":"' + b"B" * 32 +
        b'","text":"x","ts":9007199254740991}',
    "message-nul-text":
        b'{"id":"1-0","room":"r","type":"message","from":"u",'
        b'"text":"a\\u0000b","ts":1}',
    "ts-int64-max":
        b'{"room":"r","type":"typing","from":"u","ts":9223372036854775807}',
    "ts-negative": b'{"room":"r","type":"typing","from":"u","ts":-1}',
    "ts-string": b'{"room":"r","type":"typing","from":"u","ts":"1"}',
    "not-an-object": b'[' + TYPING + b']',
    "trailing-data": TYPING + b' {}',
}

API = {
    "register": b'{"name":"alice"}',
    "register-long-name": b'{"name":"' + b"n" * 33 + b'"}',
    "register-bad-name": b'{"name":"al ice"}',
    "register-number": b'{"name":7}',
    "message": b'{"text":"hi"}',
    "message-escapes": b'{"text":"\\u00e9\\ud83d\\ude00\\n\\"x\\""}',
    "message-empty": b'{"text":""}',
    "message-nul": b'{"text":"a\\u0000"}',
    "message-lone-surrogate": b'{"text":"\\ud800"}',
    "message-raw-bad-utf8": b'{"text":"\xc3\x28\xff"}',
    "message-long": b'{"text":"' + b"x" * 100 + b'"}\x07',
    "frame-message":
        b'{"type":"message","text":"hello","ignored":[true,false,null]}',
    "frame-typing": b'{"type":"typing"}',
    "frame-unknown-type": b'{"type":"shout","text":"x"}',
    "duplicate-keys": b'{"text":"a","text":"b","name":"x","name":"y"}',
    "blanks": b' \t\r\n{ "name" : "bob" , "text" : "b" } \n',
    "trailing-garbage": b'{"text":"x"} y',
    "not-an-object": b'["text"]',
    "nested": b'{"text":{"text":"x"},"name":["a"]}',
}

QUERY = {
    "since": b"since=1732230000000-0&limit=50",
    "before": b"before=1732230000000-5&limit=10",
    "empty-values": b"since=&limit=&timeout=&before=",
    "poll": b"since=0-0&timeout=25&token=abc",
    "limit-edges": b"limit=500&limit=0",
    "limit-zero": b"limit=0",
    "limit-over": b"limit=501",
    "since-max": b"since=18446744073709551615-18446744073709551615",
    "since-overflow": b"since=18446744073709551616",
    "escapes": b"token=abc%20def+g&since=1%2D2&%6Cimit=7",
    "semicolons": b"a=1;since=5;limit=3",
    "both": b"since=1-0&before=2-0",
    "bad-escape": b"since=%zz&limit=3",
    "escaped-nul": b"x=%00&since=3",
    "timeout-over": b"timeout=61",
    "last-event-id": b"1732230000000-0",
    "two-ids": b"1732230000000-12 1732230000000-9",
    "dashes": b"since=1--2&before=-1",
}

CONFIG = {
    "example": b"""# crosstalk.conf
bind = 0.0.0.0
port = 8081
redis_url = redis://127.0.0.1:6379/0
log_level = info
max_message_bytes = 4096
longpoll_timeout = 25
longpoll_max_timeout = 60
allowed_origins = "https://a.example, https://b.example"
""",
    "quotes": b"""mongo_uri = "mongodb://h/db?x=\\"y\\"\\\\z"   # comment
log_file = '/var/log/crosstalk # not a comment.log'
www_root = /srv/www#not-a-comment
bind = "::1"
""",
    "dashes-crlf": b"max-connections = 5\r\nsse-retry-ms=0\r\n\r\n",
    "unknown-key": b"port = 1\nnot_a_key = 3\n",
    "out-of-range": b"port = 65536\n",
    "not-a-number": b"port = 80x\n",
    "spaces-in-number": b"port =  42  \nheader_timeout = \" 5\"\n",
    "choices": b"log_level = debug\nlog_level = loud\n",
    "unterminated": b"bind = \"127.0.0.1\n",
    "no-equals": b"bind 127.0.0.1\n",
    "garbage-after-quote": b"bind = \"a\" b\n",
    "limits": b"max_connections = 1000000\nclient_buffer_limit = 1073741824\n"
              b"max_body_bytes = 256\nport = -0\n",
    "huge-number": b"backup_batch = 99999999999999999999\n",
    "empty": b"",
    "tabs-and-comments": b"\t# only a comment\n\t bind\t=\tx y  \t# c\n",
}

UTF8 = {
    "ascii": b"hello, world",
    "two-three-four": "\u00e9\u20ac\U0001f600".encode(),
    "edges": b"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80"
             b"\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
    "overlong": b"\xc0\xaf\xe0\x80\xaf",
    "overlong-3": b"a\xe0\x9f\xbf",
    "surrogate": b"\xed\xa0\x80",
    "cesu": b"\xed\xa0\xbd\xed\xb8\x80",
    "above-max": b"\xf4\x90\x80\x80",
    "f5": b"\xf5\x80\x80\x80",
    "truncated": b"ab\xf0\x9f\x98",
    "lead-then-ascii": b"\xe2\x82a",
    "stray-continuation": b"a\x80b",
    "nul-and-controls": b"\x00\x01\x7f",
}


def frame(opcode, payload=b"", fin=True, rsv=0, mask=b"\x37\xfa\x21\x3d",
          length=None, ext=None):
    """A client frame. `length`/`ext` force a header (for bad forms)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask is not None else 0
    if ext is None:
        ext = 0 if n < 126 else 16 if n <= 0xFFFF else 64
    if ext == 0:
        head = bytes([b0, mbit | n])
    elif ext == 16:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask is None:
        return head + payload
    masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return head + mask + masked


TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0
HI = b'{"type":"message","text":"hi"}'
ZERO = b"\0\0\0\0"


def ws(piece, flags, *frames):
    return bytes([piece, flags]) + b"".join(frames)


WS = {
    "message": ws(0, 0, frame(TEXT, HI)),
    "typing-then-close": ws(0, 0, frame(TEXT, b'{"type":"typing"}'),
                            frame(CLOSE, struct.pack(">H", 1000) + b"bye")),
    "fragmented-with-ping": ws(3, 0x01,
                               frame(TEXT, b'{"type":"mess', fin=False),
                               frame(PING, b"are you there"),
                               frame(CONT, b'age","text":"', fin=False),
                               frame(CONT, '\u00e9"}'.encode())),
    "ping-pong": ws(1, 0x01 | 0x10, frame(PING), frame(PONG, b"crosstalk")),
    "close-one-byte": ws(0, 0, frame(CLOSE, b"\x03")),
    "close-1005": ws(0, 0, frame(CLOSE, struct.pack(">H", 1005))),
    "close-reason-split": ws(3, 0, frame(CLOSE, struct.pack(">H", 4000) +
                                         "\u00e9t\u00e9".encode())),
    "binary": ws(0, 0, frame(BINARY, b"\x00\x01"), frame(TEXT, HI)),
    "unmasked": ws(0, 0, frame(TEXT, HI, mask=None)),
    "length-16": ws(7, 0x04, frame(TEXT, b'{"type":"message","text":"' +
                                   b"y" * 60 + b'","pad":"' + b"p" * 150 +
                                   b'"}')),
    "too-large": ws(0, 0, frame(TEXT, b'{"text":"' + b"z" * 1500 + b'"}')),
    "not-json": ws(0, 0x08, frame(TEXT, b"hello"), frame(TEXT, b"{}")),
    "bad-utf8": ws(2, 0, frame(TEXT, b'{"type":"message","text":"\xc3('),
                   frame(TEXT, HI)),
    "length-not-shortest": ws(0, 0, frame(TEXT, HI, ext=16)),
    "ping-not-final": ws(0, 0, frame(PING, b"x", fin=False)),
    "ping-too-long": ws(0, 0, frame(PING, b"p" * 126)),
    "rsv1": ws(0, 0, frame(TEXT, HI, rsv=4)),
    "reserved-opcode": ws(0, 0, frame(3, b"")),
    "continuation-first": ws(0, 0, frame(CONT, HI)),
    "shutdown-busy": ws(1, 0x02 | 0x04 | 0x01, frame(TEXT, HI),
                        frame(TEXT, b'{"type":"typing"}'), frame(PING),
                        frame(TEXT, HI)),
    "big-broadcast": ws(5, 0x0c, frame(TEXT, HI), frame(TEXT, HI)),
    # a zero mask leaves the JSON in the clear for the fuzzer to mutate
    "clear-messages": ws(0, 0, frame(TEXT, HI, mask=ZERO),
                         frame(TEXT, b'{"type":"typing"}', mask=ZERO),
                         frame(TEXT, b'{"type":"message","text":"\\u0000"}',
                               mask=ZERO),
                         frame(TEXT, b'{"type":"message","text":""}',
                               mask=ZERO)),
    "clear-fragments": ws(4, 0x01, frame(TEXT, b'{"type":', fin=False,
                                         mask=ZERO),
                          frame(PING, b"x", mask=ZERO),
                          frame(CONT, b'"typing"}', mask=ZERO),
                          frame(CLOSE, b"\x03\xe8", mask=ZERO)),
}


def write(target, seeds):
    d = os.path.join(CORPUS, target)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def main():
    write("fuzz_event", EVENT)
    write("fuzz_api", API)
    write("fuzz_query", QUERY)
    write("fuzz_config", CONFIG)
    write("fuzz_utf8", UTF8)
    write("fuzz_ws", WS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
