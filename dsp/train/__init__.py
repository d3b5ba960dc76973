"""Trainers: supervised fine-tuning on pseudo-label hints (sft.py); RL comes later."""
