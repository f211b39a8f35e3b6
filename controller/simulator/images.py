"""The public images the simulator knows: what DescribeImages lists and OsName echoes.

The ids are public image ids as they appear in Tencent's docs and examples; the OS each one
stands for here is the simulator's choice (images are retired and renumbered over time, so no
fixed mapping would stay true). An image configured by id alone gets :data:`DEFAULT_OS`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageInfo:
    os_name: str
    platform: str  # DescribeImages' Platform filter value
    size_gb: int = 20
    architecture: str = "x86_64"


DEFAULT_OS = ImageInfo("TencentOS Server 3.1 (TK4)", "TencentOS")

CATALOG: dict[str, ImageInfo] = {
    "img-pmqg1cw7": ImageInfo("TencentOS Server 3.1 (TK4)", "TencentOS"),
    "img-487zeit5": ImageInfo("Ubuntu Server 22.04 LTS 64bit", "Ubuntu"),
    "img-eb30mz89": ImageInfo("CentOS 7.9 64bit", "CentOS"),
    "img-9qabwvbn": ImageInfo("Debian 12.0 64bit", "Debian"),
    "img-l8og963d": ImageInfo("Rocky Linux 9.2 64bit", "Rocky Linux"),
}


def info_of(image_id: str) -> ImageInfo:
    return CATALOG.get(image_id, DEFAULT_OS)


def os_name_of(image_id: str) -> str:
    return info_of(image_id).os_name


def default_host_name(private_ip: str, image_id: str) -> str:
    """CVM's host name when RunInstances names none: ``VM-<ip's last two parts>-<os>``."""
    _, _, c, d = private_ip.split(".")
    os_word = info_of(image_id).platform.split()[0].lower()
    return f"VM-{c}-{d}-{os_word}"
