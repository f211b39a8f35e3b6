"""Chinese messages for the common errors, for callers that send ``X-TC-Language: zh-CN``.

tccli sends zh-CN by default, and CVM then answers in Chinese. The sentences are the ones the
SDK's ``errorcodes.py`` gives each code (Tencent's own wording); the English detail, which names
the field and the rule, follows in parentheses so nothing is lost in translation.
"""

from __future__ import annotations

# ruff: noqa: RUF001  (Chinese punctuation is full width)

ZH_CN: dict[str, str] = {
    "AuthFailure.SignatureExpire": "签名过期。",
    "AuthFailure.SignatureFailure": "签名错误。",
    "AuthFailure.SecretIdNotFound": "密钥不存在。",
    "AuthFailure.TokenFailure": "token 错误。",
    "AuthFailure.InvalidAuthorization": "请求头部的 Authorization 不符合腾讯云标准。",
    "InternalError": "内部错误。",
    "InvalidAction": "接口不存在。",
    "InvalidParameter": "参数错误。",
    "InvalidParameterValue": "参数取值错误。",
    "InvalidParameterCombination": "表示参数组合不正确。",
    "InvalidFilter": "无效的过滤器。",
    "MissingParameter": "缺少参数错误。",
    "UnknownParameter": "未知参数错误。",
    "UnsupportedRegion": "接口不支持所传地域。",
    "UnsupportedOperation": "操作不支持。",
    "NoSuchVersion": "接口版本不存在。",
    "RequestLimitExceeded": "请求的次数超过了频率限制。",
    "InvalidInstanceId.NotFound": "没有找到相应实例。",
    "InvalidInstanceId.Malformed": "无效实例ID。",
    "InvalidImageId.NotFound": "镜像不存在。",
    "InvalidZone.MismatchRegion": "指定的zone不存在。",
    "InvalidParameterValue.InsufficientPrice": "竞价出价过低。",
    "InvalidParameterValue.InsufficientOffering": "竞价数量不足。",
    "LimitExceeded.SpotQuota": "竞价实例类型配额不足。",
    "LimitExceeded.UserSpotQuota": "竞价实例配额不足",
    "ResourceInsufficient.SpecifiedInstanceType": "指定的实例类型库存不足。",
    "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance": "指定的实例类型在选择的可用区已售罄。",
    "ResourceInsufficient.AvailabilityZoneSoldOut": "该可用区已售罄",
    "ResourcesSoldOut.AvailabilityZoneSoldOut": "该可用区已售罄",
    "ResourceInsufficient.InsufficientOfferingMinimum": "库存不满足最小数量。",
    "UnsupportedOperation.NoInstanceTypeSupportSpot": "该实例类型不支持竞价计费",
    "UnsupportedOperation.InstanceStatePending": "请求不支持创建未完成的实例",
    "UnsupportedOperation.InstanceStateRunning": "请求不支持开机状态的实例",
    "UnsupportedOperation.InstanceStateStopped": "请求不支持已关机的实例",
    "UnsupportedOperation.InstanceStateStopping": "请求不支持正在关机的实例",
    "UnsupportedOperation.InstanceStateStarting": "实例开机中，不允许该操作。",
    "UnsupportedOperation.InstanceStateRebooting": "请求不支持正在重启的实例",
    "UnsupportedOperation.InstanceStateTerminating": "请求不支持正在销毁的实例",
    "UnsupportedOperation.StoppedModeStopCharging": "不支持关机不收费特性",
}


def localized(code: str, message: str, language: str | None) -> str:
    """``message`` in ``language`` when the simulator knows the code's Chinese text."""
    if language != "zh-CN" or code not in ZH_CN:
        return message
    return f"{ZH_CN[code]}（{message}）"
