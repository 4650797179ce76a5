"""Data: raw PR records from git, GitHub and Go trees (runner and its sources), synthetic edits,
decontamination, annotation (plans, steps, intents), and the pretraining corpus."""
