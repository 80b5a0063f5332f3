"""What reviewers and overseers read: plan diffs for pull requests and the policy's scorecard.
"""
