"""The BatchCompute-compatible API (2017-03-12, compute environments): Tencent's own batch
SDK and ``tccli batch`` create, scale, inspect and delete environments here.

:mod:`.server` is the HTTP edge (body cap, signature, key, rate limit, dispatch, audit) over
the shared Tencent-API kit (:mod:`controller.tencentapi`); :mod:`.keys` keeps the API keys
(secrets encrypted with the master key); :mod:`.actions` answers each action through the
service layer (:mod:`controller.service`), :mod:`.mapping` translates BatchCompute's fields
to rows and views back, :mod:`.refusals` turns a service refusal into Batch's error code, and
:mod:`.catalog` answers the instance-type actions from the CVM API.
"""
