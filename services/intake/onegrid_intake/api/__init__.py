from onegrid_intake.api.reports import SUBMIT_REPORT, router

__all__ = ["SUBMIT_REPORT", "router"]
