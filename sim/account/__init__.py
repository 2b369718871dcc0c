"""What a run measured: outcomes, histograms, offered load, open model, storms, summary."""
