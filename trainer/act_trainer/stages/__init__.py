"""The four stage programs: collect, judge, policy, evaluate."""
