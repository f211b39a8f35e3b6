"""The server side of a Tencent Cloud API 3.0 endpoint, shared by the CVM simulator and the
BatchCompute-compatible API: the TC3-HMAC-SHA256 check (:mod:`.auth`), reading parameters with
Tencent's errors (:mod:`.params`), the ``{"Response": ...}`` envelope, its error form and
request ids (:mod:`.wire`), the error type (:mod:`.errors`) and Chinese messages for callers
that ask in zh-CN (:mod:`.messages`).
"""
