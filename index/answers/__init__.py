"""Turning retrieved passages into a cited answer: candidate sentences, their learned score, the reply."""
