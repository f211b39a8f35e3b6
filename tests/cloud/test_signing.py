"""TC3 signing against the published test vector (Tencent's signature doc)."""

import hashlib

from controller.cloud import signing

BODY = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
CONTENT_TYPE = "application/json; charset=utf-8"
HOST = "cvm.tencentcloudapi.com"
TIMESTAMP = 1551113065
SECRET_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
SECRET_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"


def test_payload_and_canonical_request_hashes_match_vector() -> None:
    assert (
        hashlib.sha256(BODY).hexdigest()
        == "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    canonical = signing.canonical_request(HOST, CONTENT_TYPE, BODY)
    assert (
        hashlib.sha256(canonical.encode()).hexdigest()
        == "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )


def test_signature_matches_vector() -> None:
    sig = signing.signature(
        SECRET_KEY,
        host=HOST,
        content_type=CONTENT_TYPE,
        body=BODY,
        timestamp=TIMESTAMP,
        service="cvm",
    )
    assert sig == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


def test_authorization_header_round_trips_through_parser() -> None:
    header = signing.authorization(
        SECRET_ID,
        SECRET_KEY,
        host=HOST,
        content_type=CONTENT_TYPE,
        body=BODY,
        timestamp=TIMESTAMP,
        service="cvm",
    )
    parsed = signing.parse_authorization(header)
    assert parsed is not None
    assert parsed.secret_id == SECRET_ID
    assert parsed.date == "2019-02-25"
    assert parsed.service == "cvm"
    assert parsed.signed_headers == "content-type;host"
    assert parsed.signature == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


def test_parse_rejects_other_schemes() -> None:
    assert signing.parse_authorization("Basic abc") is None
    assert signing.parse_authorization("TC3-HMAC-SHA256 garbage") is None
