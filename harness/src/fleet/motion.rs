//! Motion and sensor parameters of each motion model, and the small geometry the fleet needs.

use crate::scenario::Region;

/// Mean Earth radius in metres (IUGG), used for all distances.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// How one kind of vehicle drives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionProfile {
    /// Cruise speeds are drawn from this range, m/s.
    pub cruise_speed_mps: (f64, f64),
    /// Largest speed-up, m/s².
    pub acceleration_max_mps2: f64,
    /// Largest slow-down, m/s².
    pub deceleration_max_mps2: f64,
    /// Chance per second of starting to brake for a stop.
    pub stop_rate_per_s: f64,
    /// Length of a stop, seconds.
    pub stop_s: (f64, f64),
    /// Chance per second of choosing a new cruise speed.
    pub speed_change_rate_per_s: f64,
    /// Chance per second of starting a sharp turn (e.g. at a junction).
    pub turn_rate_per_s: f64,
    /// Largest heading change rate, rad/s.
    pub turn_speed_max_rad_per_s: f64,
    /// Spread of the gentle heading drift, rad/s per sqrt(s).
    pub heading_drift_rad: f64,
}

/// City traffic.
pub const URBAN: MotionProfile = MotionProfile {
    cruise_speed_mps: (8.0, 16.0),
    acceleration_max_mps2: 2.5,
    deceleration_max_mps2: 3.5,
    stop_rate_per_s: 1.0 / 90.0,
    stop_s: (5.0, 45.0),
    speed_change_rate_per_s: 1.0 / 30.0,
    turn_rate_per_s: 1.0 / 60.0,
    turn_speed_max_rad_per_s: 0.35,
    heading_drift_rad: 0.02,
};

/// Motorway traffic.
pub const HIGHWAY: MotionProfile = MotionProfile {
    cruise_speed_mps: (25.0, 36.0),
    acceleration_max_mps2: 1.5,
    deceleration_max_mps2: 3.0,
    stop_rate_per_s: 1.0 / 1800.0,
    stop_s: (10.0, 60.0),
    speed_change_rate_per_s: 1.0 / 60.0,
    turn_rate_per_s: 1.0 / 600.0,
    turn_speed_max_rad_per_s: 0.05,
    heading_drift_rad: 0.004,
};

/// A speeding motorist (the `fleet.speeding_share` of the highway vehicles): the motorway profile
/// with cruise speeds of 122-162 km/h, so about four in five of its cruising stretches (a new
/// speed about once a minute) are above 130 km/h.
pub const HIGHWAY_SPEEDING: MotionProfile = MotionProfile {
    cruise_speed_mps: (34.0, 45.0),
    ..HIGHWAY
};

/// Great-circle distance in metres between two points given in degrees (haversine).
pub fn great_circle_distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let dphi = phi2 - phi1;
    let dlambda = (lon2 - lon1).to_radians();
    let sin_dphi = libm::sin(dphi / 2.0);
    let sin_dlambda = libm::sin(dlambda / 2.0);
    let a = sin_dphi * sin_dphi + libm::cos(phi1) * libm::cos(phi2) * sin_dlambda * sin_dlambda;
    2.0 * EARTH_RADIUS_M * libm::asin(a.sqrt().min(1.0))
}

/// The point `distance_m` from (lat, lon) along `heading_rad` (0 = north, clockwise).
///
/// Uses the local flat-Earth step, exact to about a millionth for the sub-kilometre steps
/// between two samples, and much cheaper than the spherical formula.
#[inline]
pub fn step_position(
    latitude: f64,
    longitude: f64,
    heading_rad: f64,
    distance_m: f64,
) -> (f64, f64) {
    let (sin_h, cos_h) = libm::sincos(heading_rad);
    let dlat_rad = distance_m * cos_h / EARTH_RADIUS_M;
    let new_latitude = latitude + dlat_rad.to_degrees();
    let mid_latitude_rad = ((latitude + new_latitude) / 2.0).to_radians();
    let dlon_rad = distance_m * sin_h / (EARTH_RADIUS_M * libm::cos(mid_latitude_rad));
    (new_latitude, longitude + dlon_rad.to_degrees())
}

/// Bearing from (lat, lon) to the region's centre, radians, 0 = north, clockwise.
pub fn bearing_to_centre(region: &Region, latitude: f64, longitude: f64) -> f64 {
    let centre_latitude = (region.latitude_min + region.latitude_max) / 2.0;
    let centre_longitude = (region.longitude_min + region.longitude_max) / 2.0;
    let north = centre_latitude - latitude;
    let east = (centre_longitude - longitude) * libm::cos(latitude.to_radians());
    libm::atan2(east, north)
}

/// Whether a point lies inside the region shrunk by `margin` (a fraction of each side).
pub fn inside(region: &Region, latitude: f64, longitude: f64, margin: f64) -> bool {
    let lat_pad = (region.latitude_max - region.latitude_min) * margin;
    let lon_pad = (region.longitude_max - region.longitude_min) * margin;
    latitude >= region.latitude_min + lat_pad
        && latitude <= region.latitude_max - lat_pad
        && longitude >= region.longitude_min + lon_pad
        && longitude <= region.longitude_max - lon_pad
}

/// Moves `value` toward `target` by at most `step`.
#[inline]
pub fn approach(value: f64, target: f64, step: f64) -> f64 {
    if value < target {
        (value + step).min(target)
    } else {
        (value - step).max(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_agrees_with_great_circle_distance() {
        for heading_deg in [0.0_f64, 37.0, 90.0, 181.0, 270.0, 333.0] {
            for distance_m in [0.5, 14.0, 36.0, 500.0] {
                let (lat, lon) = step_position(52.5, 13.4, heading_deg.to_radians(), distance_m);
                let measured = great_circle_distance_m(52.5, 13.4, lat, lon);
                assert!(
                    (measured - distance_m).abs() / distance_m < 1e-4,
                    "heading {heading_deg} distance {distance_m}: measured {measured}"
                );
            }
        }
    }

    #[test]
    fn bearing_points_at_the_centre() {
        let region = Region::default();
        let south_of_centre = bearing_to_centre(&region, 52.43, 13.40);
        assert!(south_of_centre.abs() < 0.01, "{south_of_centre}");
        let east_of_centre = bearing_to_centre(&region, 52.52, 13.59);
        assert!((east_of_centre.abs() - std::f64::consts::PI / 2.0).abs() < 0.01);
    }
}
