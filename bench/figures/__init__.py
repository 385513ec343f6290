"""One module per figure; each exposes ``measure(ctx) -> Figure``."""
