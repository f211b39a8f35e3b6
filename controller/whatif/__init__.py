"""What-if replays: how a placement strategy would have done on a market trace."""
