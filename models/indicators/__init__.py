"""The indicator system (风险预警指标体系): one named, pure unit per indicator."""

from models.indicators.announced_pause import AnnouncedPause
from models.indicators.base import Indicator, Reading, ramp
from models.indicators.bonus_escalation import BonusEscalation
from models.indicators.chain_contagion import ChainContagion
from models.indicators.closure_complaints import ClosureComplaints
from models.indicators.complaint_surge import ComplaintSurge
from models.indicators.custody_coverage import CustodyCoverage
from models.indicators.custody_drawdown import CustodyDrawdown
from models.indicators.custody_report_missing import CustodyReportMissing
from models.indicators.deep_discount import DeepDiscountShare
from models.indicators.liability_growth import LiabilityGrowth
from models.indicators.liability_months import LiabilityMonths
from models.indicators.over_cap_cards import OverCapCards
from models.indicators.peer_sales_surge import PeerSalesSurge
from models.indicators.redemption_decline import RedemptionDecline
from models.indicators.refund_pressure import RefundPressure
from models.indicators.registry_change import RegistryChange
from models.indicators.representative_link import RepresentativeLink
from models.indicators.sales_decline import SalesDecline
from models.indicators.sales_surge import SalesSurge
from models.indicators.severe_complaints import SevereComplaints
from models.indicators.silence import Silence

ALL_INDICATORS: tuple[type[Indicator], ...] = (
    SalesSurge,
    PeerSalesSurge,
    DeepDiscountShare,
    LiabilityMonths,
    CustodyCoverage,
    ComplaintSurge,
    Silence,
    RedemptionDecline,
    RegistryChange,
    OverCapCards,
    RefundPressure,
    CustodyReportMissing,
    SalesDecline,
    SevereComplaints,
    ChainContagion,
    RepresentativeLink,
    LiabilityGrowth,
    ClosureComplaints,
    AnnouncedPause,
    CustodyDrawdown,
    BonusEscalation,
)

__all__ = ["ALL_INDICATORS", "Indicator", "Reading", "ramp"] + [c.__name__ for c in ALL_INDICATORS]
