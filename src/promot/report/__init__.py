"""⑤ The report: a pure function of run directories (no torch import); matplotlib only in plots.py."""
