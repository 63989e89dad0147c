//! Packs images as OCI artifacts and moves them between OCI image layouts, registries and Amazon ECR.

#![warn(missing_docs)]
