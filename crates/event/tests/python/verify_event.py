#!/usr/bin/env python3
"""A second, independent verifier of merklog signed events, written from
docs/event-format.md alone (standard library and `cryptography` only).

Usage:
  verify_event.py vectors FILE.json     check every vector: valid ones verify and
                                        match their fields, invalid ones are refused
  verify_event.py verify VKEY HEX...    verify envelopes (hex) under one vkey; prints
                                        "ok <source> <sequence> <leaf hash>" per envelope,
                                        exits 1 at the first refused one
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CONTEXT = b"merklog event signature v1\x00"
MAX_LEN = 65535
L = 2**252 + 27742317777372353535851937790883648493
HEARTBEAT = "application/vnd.merklog.heartbeat"
UNUSED = "application/vnd.merklog.unused-sequence"
# Encodings of the eight small-order points of edwards25519 (and the non-canonical
# ones that decode to them), which a strict verifier refuses as keys and as R.
P = 2**255 - 19


class Refused(Exception):
    pass


def check_name(name):
    if not name or len(name.encode()) > 255:
        raise Refused("name length")
    if "+" in name:
        raise Refused("name has +")
    if any(c.isspace() for c in name):
        raise Refused("name has white space")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise Refused("name has a control character")


def parse_vkey(vkey):
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise Refused("vkey has not three parts")
    name, key_hex, b64 = parts
    check_name(name)
    if len(key_hex) != 8 or key_hex != key_hex.lower():
        raise Refused("key id not 8 lower-case hex digits")
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 33 or raw[0] != 0x01:
        raise Refused("not an Ed25519 vkey")
    public = raw[1:]
    key_id = hashlib.sha256(name.encode() + b"\n" + b"\x01" + public).digest()[:4]
    if key_id.hex() != key_hex:
        raise Refused("vkey's key id does not match its key")
    if is_small_order(public):
        raise Refused("small-order public key")
    return name, int(key_hex, 16), public


def decode_point(encoded):
    """Decodes an edwards25519 point (x, y), or None when not on the curve."""
    y = int.from_bytes(encoded, "little") & ((1 << 255) - 1)
    sign = encoded[31] >> 7
    if y >= P:
        return None
    d = (-121665 * pow(121666, P - 2, P)) % P
    u = (y * y - 1) % P
    v = (d * y * y + 1) % P
    x2 = u * pow(v, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * pow(2, (P - 1) // 4, P) % P
    if (x * x - x2) % P != 0:
        return None
    if x == 0 and sign == 1:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y)


def point_add(p1, p2):
    d = (-121665 * pow(121666, P - 2, P)) % P
    x1, y1 = p1
    x2, y2 = p2
    t = d * x1 * x2 * y1 * y2 % P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P
    return (x3, y3)


def is_small_order(encoded):
    """True when 8 * point is the identity (or the bytes are not a point)."""
    point = decode_point(encoded)
    if point is None:
        return True
    for _ in range(3):
        point = point_add(point, point)
    return point == (0, 1)


def parse_envelope(envelope):
    if len(envelope) > MAX_LEN:
        raise Refused("longer than 65535 bytes")
    if envelope[:4] != b"MLEV":
        raise Refused("wrong magic")
    if len(envelope) < 5 or envelope[4] != 1:
        raise Refused("version is not 1")
    at = 5

    def take(n, field):
        nonlocal at
        if at + n > len(envelope):
            raise Refused("truncated in " + field)
        out = envelope[at : at + n]
        at += n
        return out

    source_len = take(1, "source length")[0]
    source = take(source_len, "source").decode("utf-8")
    check_name(source)
    key_id = int.from_bytes(take(4, "key id"), "big")
    sequence = int.from_bytes(take(8, "sequence"), "big")
    timestamp_ms = int.from_bytes(take(8, "timestamp"), "big")
    media_len = take(1, "media type length")[0]
    media_raw = take(media_len, "media type")
    if media_len == 0 or any(b < 0x21 or b > 0x7E for b in media_raw) or b"/" not in media_raw:
        raise Refused("bad media type")
    media_type = media_raw.decode("ascii")
    payload_len = int.from_bytes(take(4, "payload length"), "big")
    payload = take(payload_len, "payload")
    signed_len = at
    signature = take(64, "signature")
    if at != len(envelope):
        raise Refused("bytes after the signature")
    if media_type == HEARTBEAT and payload:
        raise Refused("heartbeat with a payload")
    if media_type == UNUSED:
        if len(payload) != 16:
            raise Refused("unused-sequence payload is not 16 bytes")
        first = int.from_bytes(payload[:8], "big")
        last = int.from_bytes(payload[8:], "big")
        if first > last or first <= sequence <= last:
            raise Refused("bad unused range")
    return {
        "source": source,
        "key_id": key_id,
        "sequence": sequence,
        "timestamp_ms": timestamp_ms,
        "media_type": media_type,
        "payload": payload,
        "message": CONTEXT + envelope[:signed_len],
        "signature": signature,
    }


def verify(vkey, envelope):
    name, key_id, public = parse_vkey(vkey)
    event = parse_envelope(envelope)
    if event["source"] != name or event["key_id"] != key_id:
        raise Refused("envelope names another key")
    signature = event["signature"]
    if int.from_bytes(signature[32:], "little") >= L:
        raise Refused("non-canonical S")
    if is_small_order(signature[:32]):
        raise Refused("small-order R")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, event["message"])
    except InvalidSignature:
        raise Refused("signature does not verify")
    event["leaf_hash"] = hashlib.sha256(b"\x00" + envelope).hexdigest()
    return event


def check_vectors(path):
    with open(path) as f:
        vectors = json.load(f)
    if bytes.fromhex(vectors["signature_context"]) != CONTEXT:
        raise SystemExit("signature context differs from the document")
    count = 0
    for case in vectors["valid"]:
        event = verify(case["vkey"], bytes.fromhex(case["envelope"]))
        for field in ("source", "sequence", "timestamp_ms", "media_type", "leaf_hash"):
            if event[field] != case[field]:
                raise SystemExit(f"{case['description']}: {field} {event[field]!r} != {case[field]!r}")
        if event["payload"].hex() != case["payload"] or f"{event['key_id']:08x}" != case["key_id"]:
            raise SystemExit(f"{case['description']}: payload or key id differs")
        count += 1
    for case in vectors["invalid"]:
        try:
            verify(case["vkey"], bytes.fromhex(case["envelope"]))
        except (Refused, ValueError, UnicodeDecodeError):
            count += 1
            continue
        raise SystemExit(f"{case['description']}: accepted, should be refused")
    print(f"ok {count} vectors")


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "vectors":
        check_vectors(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "verify":
        for envelope in sys.argv[3:]:
            try:
                event = verify(sys.argv[2], bytes.fromhex(envelope))
            except (Refused, ValueError, UnicodeDecodeError) as error:
                print(f"refused: {error}")
                sys.exit(1)
            print(f"ok {event['source']} {event['sequence']} {event['leaf_hash']}")
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
