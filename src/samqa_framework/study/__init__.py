"""The study: for each (method, data set), annotate, export, train the detector, track and evaluate (Table 2)."""
