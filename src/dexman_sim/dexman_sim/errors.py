"""The error raised for input a scene cannot be built from (empty or non-finite mesh, bad pose,
tilted table, object inside the robot's clearance)."""


class SceneInputError(ValueError):
    """Input a simulation scene cannot be built from; the message names the object and the value."""
