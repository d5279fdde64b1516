"""The network: the JiT Transformer, its registry of sizes, official-weight conversion and FLOP counts. It knows
nothing about noise schedules: it maps (z_t, t, class) to a prediction."""
