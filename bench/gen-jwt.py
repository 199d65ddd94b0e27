#!/usr/bin/env python3
"""Generate the RSA-2048 key pair and the RS512 JWTs that HAProxy's jwt_verify checks in
side-by-side.sh (HAProxy cannot issue tokens; portcullis's own tokens come from its token
endpoint). Needs pyjwt and cryptography.

Usage: gen-jwt.py KEY_DIR

Writes (existing key files are reused, tokens are re-minted every call):
  private.pem          RSA-2048 private key (PKCS#8, unencrypted; benchmark only)
  public.pem           SubjectPublicKeyInfo PEM (what HAProxy jwt_verify loads)
  kid.txt              uppercase hex SHA-1 of the public key DER (SPKI)
  token.jwt            good RS512 token: sub, unique_name, aud=access, iat, nbf, exp (+10y)
  bad-sig.jwt          same header+claims, signed by a *different* RSA-2048 key (same kid)
  tampered.jwt         good token with the payload changed (sub) but the original signature
  wrong-aud.jwt        correctly signed, aud=refresh
  expired.jwt          correctly signed, exp in the past
  not-yet-valid.jwt    correctly signed, nbf in the future
  hs512.jwt            alg=HS512 keyed with the public PEM bytes (alg-confusion probe)
"""
import base64
import hashlib
import json
import os
import sys
import time

import jwt  # pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

if len(sys.argv) != 2:
    sys.exit("usage: gen-jwt.py KEY_DIR")
key_dir = sys.argv[1]
os.makedirs(key_dir, exist_ok=True)
priv_path = os.path.join(key_dir, "private.pem")
pub_path = os.path.join(key_dir, "public.pem")

if os.path.exists(priv_path):
    with open(priv_path, "rb") as f:
        priv = serialization.load_pem_private_key(f.read(), password=None)
else:
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with open(priv_path, "wb") as f:
        f.write(priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    os.chmod(priv_path, 0o600)

pub = priv.public_key()
pub_pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
pub_der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
with open(pub_path, "wb") as f:
    f.write(pub_pem)
kid = hashlib.sha1(pub_der).hexdigest().upper()
with open(os.path.join(key_dir, "kid.txt"), "w") as f:
    f.write(kid + "\n")

now = int(time.time())
TEN_YEARS = 10 * 365 * 24 * 3600
base = {
    "sub": "4f1c2b7e-0000-4000-8000-000000000001",
    "unique_name": "bench.user@example.test",
    "aud": "access",
    "iat": now,
    "nbf": now - 60,
    "exp": now + TEN_YEARS,
}
hdr = {"kid": kid}  # pyjwt adds alg=RS512, typ=JWT


def write(name, token):
    with open(os.path.join(key_dir, name), "w") as f:
        f.write(token + "\n")


good = jwt.encode(base, priv, algorithm="RS512", headers=hdr)
write("token.jwt", good)

other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
write("bad-sig.jwt", jwt.encode(base, other, algorithm="RS512", headers=hdr))

h, p, s = good.split(".")
tampered_claims = dict(base, sub="4f1c2b7e-0000-4000-8000-000000000002")
p2 = base64.urlsafe_b64encode(json.dumps(tampered_claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
write("tampered.jwt", ".".join([h, p2, s]))

write("wrong-aud.jwt", jwt.encode(dict(base, aud="refresh"), priv, algorithm="RS512", headers=hdr))
write("expired.jwt", jwt.encode(dict(base, iat=now - 7200, nbf=now - 7200, exp=now - 3600), priv,
                                algorithm="RS512", headers=hdr))
write("not-yet-valid.jwt", jwt.encode(dict(base, nbf=now + 3600), priv, algorithm="RS512", headers=hdr))

# alg-confusion probe: HS512 with the public key PEM as the HMAC secret. pyjwt refuses PEM-looking
# HMAC keys, so build it by hand.
import hmac  # noqa: E402

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

hh = b64u(json.dumps({"alg": "HS512", "typ": "JWT", "kid": kid}, separators=(",", ":")).encode())
pp = b64u(json.dumps(base, separators=(",", ":")).encode())
sig = hmac.new(pub_pem, f"{hh}.{pp}".encode(), hashlib.sha512).digest()
write("hs512.jwt", f"{hh}.{pp}.{b64u(sig)}")

# self-check with pyjwt
claims = jwt.decode(good, pub, algorithms=["RS512"], audience="access")
assert claims["sub"] == base["sub"]
print(f"kid={kid} token_len={len(good)} dir={key_dir}")
