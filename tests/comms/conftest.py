from tests.oncall.conftest import org

__all__ = ["org"]
