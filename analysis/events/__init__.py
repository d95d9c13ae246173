"""Events: Pythia8 + FastJet generation, jets, the coffea processing stage and signal injection."""
