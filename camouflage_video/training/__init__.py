"""Training of the models that have no public checkpoint (CAMOUFLaGE-Light's attribute T2I-Adapter)."""
