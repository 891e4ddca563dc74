//! Generated gRPC code for the definitions in this folder.

/// Event services exactly as the AccelByte event bus calls them (`OnMessage`).
pub mod accelbyte {
    pub mod iam {
        pub mod account {
            pub mod v1 {
                tonic::include_proto!("accelbyte.iam.account.v1");
            }
        }
    }
    pub mod social {
        pub mod statistic {
            pub mod v1 {
                tonic::include_proto!("accelbyte.social.statistic.v1");
            }
        }
    }
}

pub mod challenge {
    /// The player API (also serialized as the REST JSON bodies).
    pub mod v1 {
        tonic::include_proto!("challenge.v1");
    }
    /// The admin API: rule plugin lifecycle and configuration reloads.
    pub mod admin {
        pub mod v1 {
            tonic::include_proto!("challenge.admin.v1");
        }
    }
    /// Batch event ingestion for high-volume producers.
    pub mod events {
        pub mod v1 {
            tonic::include_proto!("challenge.events.v1");
        }
    }
}
