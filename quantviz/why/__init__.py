"""Why a quantized pattern was (not) delegated or fused: the pattern ledger and its reasons."""
