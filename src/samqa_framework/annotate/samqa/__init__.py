"""SAM-QA (paper section 2, Fig. 1): box prompts carried frame to frame through a light SAM, mask clean-up,
IoU association, overlap and size checks, automatic recovery, manual prompts only where the checks fail."""
