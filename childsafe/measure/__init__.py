"""Measurement: whether a campaign raised help-seeking (before-after rate
ratios, interrupted time series), and the enforcement figures a force
publishes (case events), with plots and printable reports."""
