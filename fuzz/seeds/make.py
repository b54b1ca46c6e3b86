#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from the repository's
own test material (policies, fixtures, conformance lines) plus hand-written
edge cases. Re-run after changing it: `python3 fuzz/seeds/make.py`.
Files are named seed-*; crash inputs found by fuzzing are added as
regression-* and are never touched by this script."""
import glob, hashlib, json, os, re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, items):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for f in glob.glob(os.path.join(d, "seed-*")):
        os.remove(f)
    for data in items:
        if isinstance(data, str):
            data = data.encode()
        name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def conformance_lines():
    text = read("tests/conformance/intercept-conformance.yaml").decode()
    # YAML single-quoted scalars: '' is one quote.
    return [m.replace("''", "'") for m in re.findall(r"^\s*- line: '(.*)'\s*$", text, re.M)]


def call(i, params):
    return '{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":%s}' % (i, params)


JSON = [
    "null", "true", "false", "0", "-0", "1.5e300", "1e400", "-1E-400", "9007199254740993",
    "18446744073709551615", "18446744073709551616", "-9223372036854775808", "0.1", "1.0e+2",
    '""', '"\\u0041\\n\\t\\"\\\\\\/"', '"\\ud83d\\ude00"', '"\\ud800"', '"\\udc00x"', '"\\u00e9"',
    '"é😀"', '"\\u017f"', "[]", "{}", ' [1, 2 ,3 ] ', '{"a":1,"b":[true,false,null]}',
    '{"a":1,"a":2}', '{"a":1,"A":2}', '{"ſ":1,"s":2}', '{"K":1,"\\u212a":2}', '{"a":{"b":{"a":1,"a":2}}}',
    '{"\\u0061":1,"a":2}', "[" * 127 + "]" * 127, "[" * 128 + "]" * 128, "[" * 129 + "]" * 129,
    '{"a":' * 130 + "1" + "}" * 130, "01", "1.", ".5", "-", "+1", "1e", "[1,]", '{"a":1,}', "[1 2]",
    '"\x01"', '"\\x"', '"\\u12"', "tru", "nul", "1 2", '{"k":"v"} x', b'"\xff"', b'"\xed\xa0\x80"',
    b'"\xc0\xaf"', "\t\n\r 1 \r\n",
    "{" + ",".join('"k%d":%d' % (i, i) for i in range(25)) + "}",
    "{" + ",".join('"k%d":%d' % (i, i) for i in range(25)) + ',"K3":0}',
]
JSON += [l for l in conformance_lines()]

RPC = [
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}',
    '{"jsonrpc":"2.0","method":"notifications/initialized"}',
    '{"jsonrpc":"2.0","id":2,"method":"tools/list"}',
    '{"jsonrpc":"2.0","id":"x","result":{}}',
    '{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"m"}}',
    call(4, '{"name":"echo","arguments":{"message":"hi"}}'),
    call(5, '{"name":"echo"}'),
    call(6, '{"name":"echo","arguments":null}'),
    call(7, '{"name":"e\\u0063ho","arguments":{}}'),
    call(8, '{"name":"echo","Name":"x"}'),
    call(9, '{"name":"echo","Arguments":{"a":1}}'),
    '{"jsonrpc":"2.0","id":10,"METHOD":"tools/call","result":{},"params":{"name":"x"}}',
    '{"jsonrpc":"2.0","id":11,"method":"ping","Params":{}}',
    '{"jsonrpc":"2.0","ID":12,"method":"ping"}',
    '{"jsonrpc":"2.0","id":13,"method":5}',
    '[{"jsonrpc":"2.0","id":14,"method":"ping"}]',
    "42", "", "{}",
]
RPC += conformance_lines()

PROXY = [
    "\n".join([RPC[0], RPC[1], RPC[2]]),
    call(1, '{"name":"echo","arguments":{"x":1}}'),
    call(1, '{"name":"read_file","arguments":{"path":"/home/a"}}'),
    call(1, '{"name":"read_file","arguments":{"path":"/etc/passwd"}}'),
    call(1, '{"name":"read_file","arguments":{"path":"a/../b"}}'),
    call(1, '{"name":"pay","arguments":{"amount":50,"currency":"usd"}}'),
    call(1, '{"name":"pay","arguments":{"amount":500,"currency":"usd"}}'),
    call(1, '{"name":"pay","arguments":{"amount":5e1,"currency":"eu\\u0072"}}'),
    call(1, '{"name":"send_mail","arguments":{"to":{"domain":"example.com"}}}'),
    call(1, '{"name":"send_mail","arguments":{"to":{"domain":"evil.com"}}}'),
    call(1, '{"name":"secret_key","arguments":{}}'),
    call(1, '{"name":"secret_echo","arguments":{}}'),
    call(1, '{"name":"list_files"}'),
    call(1, '{"name":"unknown"}'),
    call(1, '{"name":"drop"}'),
    call(1, '{"name":"pay","arguments":{"amount":50,"currency":"usd","AMOUNT":900}}'),
    call(1, '{"name":"echo","Arguments":{"x":1}}'),
    '{"jsonrpc":"2.0","id":1,"result":{},"METHOD":"tools/call","params":{"name":"drop"}}',
    '{"jsonrpc":"2.0","id":1,"error":{},"Method":"tools/call","PARAMS":{"name":"drop"}}',
    "[" + call(1, '{"name":"echo"}') + "," + call(2, '{"name":"drop"}') + "]",
    "\n".join([call(1, '{"name":"echo"}'), call(1, '{"name":"echo"}'),
               '\x01{"jsonrpc":"2.0","id":1,"result":{}}', call(1, '{"name":"echo"}')]),
    "\n".join(['{"jsonrpc":"2.0","id":7,"method":"tools/list"}',
               '\x01{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"echo"},{"name":"secret_x"}]}}']),
    '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}',
]
PROXY += conformance_lines()

YAML = [read(p) for p in sorted(glob.glob(os.path.join(ROOT, "tests/corpus/intercept/servers/*.yaml")))[:30]]
YAML += [read(p) for p in sorted(glob.glob(os.path.join(ROOT, "tests/corpus/intercept/invalid/*.yaml")))]
YAML += [read(p) for p in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/**/*.yaml"), recursive=True))]
YAML += [read(p) for p in sorted(glob.glob(os.path.join(ROOT, "policies/**/*.yaml"), recursive=True))]
YAML += ["", "version: \"1\"\n", "a: &x 1\nb: *x\n", "- 1\n- 2\n", "k: !!str v\n", "? [a]\n: b\n",
         "version: 1\ntools:\n  t:\n    rules:\n      - action: deny\n"]

DSL = [read(p) for p in sorted(glob.glob(os.path.join(ROOT, "policies/**/*.policy"), recursive=True))]
DSL += [read(p) for p in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/dsl*/*.policy")))]
# The proxy target's own policy.
DSL += re.findall(r'PROXY_POLICY: &str = r#"(.*?)"#;', read("fuzz/src/lib.rs").decode(), re.S)
DSL += ["", "server fuzz {}", "server fuzz \"d\" { default deny hide a, \"b*\" tool * {} }",
        "server fuzz { tool t { deny \"m\" when args.a.b > 1e3 and not (args.s matches /x+/i) } }",
        "server fuzz { tool t { allow when len(args.x) <= 3 else \"m\" limit 5 per 1h by args.c -> \"l\" } }",
        "/* c */ // d\nserver fuzz { include \"x.policy\" }", "server fuzz { tool t { deny \"\\u{41}\" when args.a in [1, \"x\", true] } }"]

write("json", JSON)
write("jsonrpc", RPC)
write("proxy", PROXY)
write("yaml", YAML)
write("dsl", DSL)
