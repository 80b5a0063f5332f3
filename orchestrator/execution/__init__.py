"""Executing the steps: the executor and its state, a run's lifecycle (runs.py), the jobs a step
becomes, running them through ansible-runner and the warm playbook server, the inventory.
"""
