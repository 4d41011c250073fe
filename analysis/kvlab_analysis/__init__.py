"""Analysis of kvlab results folders: loading, Pareto fronts, tables and plots."""
