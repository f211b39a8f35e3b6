"""spot-controller: keeps Tencent Cloud spot instance fleets at their desired count."""

__version__ = "0.1.0"
