"""The plans: the model, loading, the rules, the steps they expand to, and their schedule.

Start at loader.load_plans (files to a PlanSet), valid.load_valid (what every acting command
uses), rules.validate (every finding), steps.build_graph and schedule.schedule.
"""
