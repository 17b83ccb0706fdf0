#!/usr/bin/env python3
"""An independent check of merklog's COSE receipts and SCITT statements, written from
RFC 9942 (COSE Receipts, RFC9162_SHA256), RFC 9162 section 2.1.3.2 and RFC 9052, with
pycose and cbor2 only (scripts/interop-prereqs installs pycose 1.1.0 and cbor2<6).

  verify KEYSET ENTRY RECEIPT      -> "ok <tree_size> <leaf_index> <root hex>" or exit 1
  keygen ALG KEYFILE               -> prints the public key as "<ed25519|es256>:<base64>"
  sign KEYFILE ISSUER SUBJECT PAYLOAD OUT

KEYSET is a COSE_KeySet (what /.well-known/scitt-keys serves); ENTRY the entry's exact
bytes; RECEIPT the tagged COSE_Sign1. The root is recomputed here from the proof, then
the signature is checked over it as the detached payload.
"""
import base64
import hashlib
import sys

import cbor2
from pycose.algorithms import EdDSA, Es256
from pycose.headers import Algorithm, KID
from pycose.keys import CoseKey, EC2Key, OKPKey
from pycose.messages import Sign1Message

VDS, VDP, INCLUSION_PROOFS, RFC9162_SHA256 = 395, 396, -1, 1


def fail(reason):
    print(f"fail {reason}")
    sys.exit(1)


def root_from_proof(leaf_hash, index, size, path):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        fail(f"leaf index {index} is not below tree size {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            fail("the audit path is too long")
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        fail("the audit path is too short")
    return r


def header(hdr, label):
    for k, v in hdr.items():
        key = k if isinstance(k, int) else getattr(k, "identifier", k)
        if key == label:
            return v
    return None


def verify(keyset_file, entry_file, receipt_file):
    keys = cbor2.loads(open(keyset_file, "rb").read())
    entry = open(entry_file, "rb").read()
    data = open(receipt_file, "rb").read()
    if cbor2.loads(data).tag != 18:
        fail("not a tagged COSE_Sign1")
    msg = Sign1Message.decode(data)
    if header(msg.phdr, VDS) != RFC9162_SHA256:
        fail("vds is not RFC9162_SHA256")
    if msg.payload is not None:
        fail("the payload is not detached")
    proofs = header(msg.uhdr, VDP)[INCLUSION_PROOFS]
    size, index, path = cbor2.loads(proofs[0])
    leaf_hash = hashlib.sha256(b"\x00" + entry).digest()
    root = root_from_proof(leaf_hash, index, size, path)
    kid = header(msg.phdr, KID.identifier) or msg.phdr.get(KID)
    for raw in keys:
        key = CoseKey.from_dict(raw)
        if kid is not None and key.kid != kid:
            continue
        msg.key = key
        if msg.verify_signature(detached_payload=root):
            print(f"ok {size} {index} {root.hex()}")
            return
        fail(f"signature does not verify over root {root.hex()}")
    fail("no key in the key set matches the receipt's kid")


def public_text(key):
    if isinstance(key, OKPKey):
        return "ed25519:" + base64.b64encode(key.x).decode()
    return "es256:" + base64.b64encode(b"\x04" + key.x + key.y).decode()


def keygen(alg, keyfile):
    if alg == "ed25519":
        key = OKPKey.generate_key(crv="ED25519")
        key.alg = EdDSA
    elif alg == "es256":
        key = EC2Key.generate_key(crv="P_256")
        key.alg = Es256
    else:
        fail(f"unknown algorithm {alg}")
    open(keyfile, "wb").write(key.encode())
    print(public_text(key))


def sign(keyfile, issuer, subject, payload, out):
    key = CoseKey.decode(open(keyfile, "rb").read())
    alg = EdDSA if isinstance(key, OKPKey) else Es256
    msg = Sign1Message(
        phdr={Algorithm: alg, 3: "text/plain", 15: {1: issuer, 2: subject}},
        payload=payload.encode(),
    )
    msg.key = key
    open(out, "wb").write(msg.encode(tag=True))
    print("signed")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"verify": verify, "keygen": keygen, "sign": sign}[command](*args)
