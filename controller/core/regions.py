"""Tencent Cloud's public regions and their availability zones: the one list in the project.

Settings check ``TENCENTCLOUD_REGION`` against it and the simulator sells spot in (a
configurable part of) it. Tencent adds regions now and then; a region newer than this list is
allowed by a setting, never by editing code elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    """One region as ``DescribeRegions`` names it, with the zones ``DescribeZones`` lists."""

    name: str  # e.g. ap-guangzhou
    display_name: str  # RegionName, as the console shows it
    zones: tuple[str, ...]
    zone_id_base: int = 0  # ZoneId of zone n is zone_id_base + n (ap-guangzhou-3: 100003)

    def zone_id(self, zone: str) -> str:
        """Tencent's numeric ZoneId of one of this region's zones, as DescribeZones shows it."""
        return str(self.zone_id_base + int(zone.rpartition("-")[2]))

    def zone_name(self, zone: str) -> str:
        """The console's zone name, such as 广州三区."""
        city = self.display_name.partition("(")[2].rstrip(")")
        return f"{city}{_chinese_number(int(zone.rpartition('-')[2]))}区"


def _chinese_number(n: int) -> str:
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    tens, ones = divmod(n, 10)
    return f"{digits[tens] if tens > 1 else ''}十{digits[ones] if ones else ''}"


def _region(
    name: str, display_name: str, zone_numbers: tuple[int, ...], zone_id_base: int
) -> Region:
    return Region(name, display_name, tuple(f"{name}-{n}" for n in zone_numbers), zone_id_base)


REGIONS: tuple[Region, ...] = (
    _region("ap-guangzhou", "华南地区(广州)", (3, 4, 6, 7), 100000),
    _region("ap-shanghai", "华东地区(上海)", (2, 3, 4, 5, 8), 200000),
    _region("ap-shanghai-fsi", "华东地区(上海金融)", (1, 2, 3), 700000),
    _region("ap-shenzhen-fsi", "华南地区(深圳金融)", (1, 2, 3), 110000),
    _region("ap-beijing-fsi", "华北地区(北京金融)", (1,), 460000),
    _region("ap-nanjing", "华东地区(南京)", (1, 2, 3), 330000),
    _region("ap-beijing", "华北地区(北京)", (3, 4, 5, 6, 7, 8), 800000),
    _region("ap-chengdu", "西南地区(成都)", (1, 2), 160000),
    _region("ap-chongqing", "西南地区(重庆)", (1,), 190000),
    _region("ap-hongkong", "港澳台地区(中国香港)", (1, 2, 3), 300000),
    _region("ap-singapore", "亚太东南(新加坡)", (1, 2, 3, 4), 900000),
    _region("ap-jakarta", "亚太东南(雅加达)", (1, 2), 720000),
    _region("ap-bangkok", "亚太东南(曼谷)", (1, 2), 230000),
    _region("ap-seoul", "亚太东北(首尔)", (1, 2), 180000),
    _region("ap-tokyo", "亚太东北(东京)", (1, 2), 250000),
    _region("ap-mumbai", "亚太南部(孟买)", (1, 2), 210000),
    _region("na-siliconvalley", "美国西部(硅谷)", (1, 2), 150000),
    _region("na-ashburn", "美国东部(弗吉尼亚)", (1, 2), 220000),
    _region("eu-frankfurt", "欧洲地区(法兰克福)", (1, 2), 170000),
    _region("sa-saopaulo", "南美地区(圣保罗)", (1,), 740000),
)

BY_NAME: dict[str, Region] = {r.name: r for r in REGIONS}


# What a region's name looks like (``ap-guangzhou``, ``ap-shanghai-fsi``): for the names a user
# adds with SPOT_CONTROLLER_EXTRA_REGIONS, so that a typo there is caught too.
REGION_NAME_RE = re.compile(r"[a-z]+(-[a-z]+)+")


def is_known_region(name: str) -> bool:
    return name in BY_NAME


def known_region_names() -> tuple[str, ...]:
    """Every region of the list, in its order (China first, as the console lists them)."""
    return tuple(r.name for r in REGIONS)


def region_of_zone(zone: str) -> str:
    """``ap-guangzhou-3`` -> ``ap-guangzhou`` (a zone is its region and a number)."""
    return zone.rpartition("-")[0]
