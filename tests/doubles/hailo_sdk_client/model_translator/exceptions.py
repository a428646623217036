"""Parser exceptions of the Dataflow Compiler, under the names the DFC uses."""


class ParsingWithRecommendationException(Exception):
    def __init__(self, message: str, recommended_start_node_names=None, recommended_end_node_names=None):
        super().__init__(message)
        self.recommended_start_node_names = recommended_start_node_names or []
        self.recommended_end_node_names = recommended_end_node_names or []


class UnsupportedModelError(Exception):
    pass


class MisspellNodeError(Exception):
    pass
