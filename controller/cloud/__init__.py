"""The edge that talks to Tencent Cloud's CVM API 3.0."""
