"""What the CLI, the BatchCompute API and the console call.

Validation and typed views of compute environments over the store; the store only stores.
"""
