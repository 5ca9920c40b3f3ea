"""A generated-mutation benchmark of the diagnosis: healthy bases × injected faults × seeds."""
