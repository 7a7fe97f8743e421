from onegrid_intake.api.reports import router

__all__ = ["router"]
