//! The gateway's C-STORE SCP on the site network: the site's PACS and scanners send here.
//!
//! Only the site's calling AE titles (from central) may associate, and only to the gateway's AE
//! title. Each instance is received into memory, de-identified (or sealed for assignment) and
//! made durable in the spool before the C-STORE response says success.

use std::net::SocketAddr;
use std::sync::Arc;

use corelab_dimse::{encode_command, read_command};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_ul::ServerAssociationOptions;
use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{AssociationRJServiceUserReason, PDataValue, PDataValueType, Pdu, UserIdentity};
use tokio::net::TcpListener;

use super::Shared;
use super::site::{ReceiveError, Received};

const C_STORE_RQ: u16 = 0x0001;
const C_STORE_RSP: u16 = 0x8001;
const C_ECHO_RQ: u16 = 0x0030;
const C_ECHO_RSP: u16 = 0x8030;
const NO_DATA_SET: u16 = 0x0101;
const SUCCESS: u16 = 0x0000;
const OUT_OF_RESOURCES: u16 = 0xA700;
const CANNOT_UNDERSTAND: u16 = 0xC000;
/// Largest instance received (held in memory while it arrives).
const MAX_INSTANCE_BYTES: usize = 2 * 1024 * 1024 * 1024;

/// Who may associate: the site's AE titles, calling the gateway's AE title.
#[derive(Clone)]
pub struct SiteAccess {
    pub ae_title: String,
    pub allowed: Arc<Vec<String>>,
}

impl AccessControl for SiteAccess {
    fn check_access(
        &self,
        _this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let norm = |s: &str| s.trim_matches(|c: char| c == ' ' || c == '\0').to_string();
        if norm(called_ae_title) != self.ae_title {
            tracing::warn!(called_ae = %norm(called_ae_title), "association rejected: not the gateway's AE title");
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        if !self.allowed.iter().any(|a| *a == norm(calling_ae_title)) {
            tracing::warn!(calling_ae = %norm(calling_ae_title), "association rejected: not one of the site's AE titles");
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

type Options = ServerAssociationOptions<'static, SiteAccess, dicom_ul::association::server::DefaultNegotiation>;

/// Serves C-ECHO and C-STORE on `listener` forever.
pub async fn serve(listener: TcpListener, access: SiteAccess, shared: Arc<Shared>) -> std::io::Result<()> {
    let options: Arc<Options> = Arc::new(
        ServerAssociationOptions::new()
            .ae_access_control(access.clone())
            .ae_title(access.ae_title.clone())
            .promiscuous(true)
            .with_abstract_syntax(uids::VERIFICATION)
            .max_pdu_length(131_072)
            .read_timeout(std::time::Duration::from_secs(120)),
    );
    loop {
        let (socket, peer) = listener.accept().await?;
        let (options, shared) = (options.clone(), shared.clone());
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            if let Err(e) = association(socket, peer, &options, &shared).await {
                tracing::warn!(%peer, error = %e, "association ended with an error");
            }
        });
    }
}

struct Store {
    message_id: u16,
    sop_class: String,
    sop_instance: String,
    pc_id: u8,
    data: Vec<u8>,
    too_large: bool,
}

async fn association(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    options: &Options,
    shared: &Arc<Shared>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut assoc = match options.establish_async(socket).await {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(%peer, reason = %e, "association not established");
            return Ok(());
        }
    };
    let calling = dicom_ul::association::Association::peer_ae_title(&assoc).to_string();
    tracing::info!(%peer, calling_ae = %calling, "association accepted");
    let pcs: Vec<(u8, String)> = assoc
        .presentation_contexts()
        .iter()
        .map(|pc| (pc.id, pc.transfer_syntax.trim_end_matches('\0').to_string()))
        .collect();
    let mut current: Option<Store> = None;
    loop {
        match assoc.receive().await? {
            Pdu::PData { data } => {
                for pdv in data {
                    match pdv.value_type {
                        PDataValueType::Command => {
                            let cmd = read_command(&pdv.data)?;
                            match cmd_u16(&cmd, tags::COMMAND_FIELD)? {
                                C_ECHO_RQ => {
                                    let rsp = encode_command(vec![
                                        DataElement::new(
                                            tags::AFFECTED_SOP_CLASS_UID,
                                            VR::UI,
                                            PrimitiveValue::from(uids::VERIFICATION),
                                        ),
                                        DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(C_ECHO_RSP)),
                                        DataElement::new(
                                            tags::MESSAGE_ID_BEING_RESPONDED_TO,
                                            VR::US,
                                            PrimitiveValue::from(cmd_u16(&cmd, tags::MESSAGE_ID)?),
                                        ),
                                        DataElement::new(
                                            tags::COMMAND_DATA_SET_TYPE,
                                            VR::US,
                                            PrimitiveValue::from(NO_DATA_SET),
                                        ),
                                        DataElement::new(tags::STATUS, VR::US, PrimitiveValue::from(SUCCESS)),
                                    ])?;
                                    send_command(&mut assoc, pdv.presentation_context_id, rsp).await?;
                                }
                                C_STORE_RQ => {
                                    let ts = pcs
                                        .iter()
                                        .find(|(id, _)| *id == pdv.presentation_context_id)
                                        .map(|(_, ts)| ts.clone())
                                        .unwrap_or_else(|| uids::IMPLICIT_VR_LITTLE_ENDIAN.to_string());
                                    let sop_class = cmd_str(&cmd, tags::AFFECTED_SOP_CLASS_UID)?;
                                    let sop_instance = cmd_str(&cmd, tags::AFFECTED_SOP_INSTANCE_UID)?;
                                    let data = file_meta_prefix(&sop_class, &sop_instance, &ts)?;
                                    current = Some(Store {
                                        message_id: cmd_u16(&cmd, tags::MESSAGE_ID)?,
                                        sop_class,
                                        sop_instance,
                                        pc_id: pdv.presentation_context_id,
                                        data,
                                        too_large: false,
                                    });
                                }
                                _ => {
                                    tracing::warn!(%peer, "unsupported DIMSE command; aborting");
                                    assoc.abort().await?;
                                    return Ok(());
                                }
                            }
                        }
                        PDataValueType::Data => {
                            let Some(store) = current.as_mut() else {
                                assoc.abort().await?;
                                return Ok(());
                            };
                            if store.data.len() + pdv.data.len() > MAX_INSTANCE_BYTES {
                                store.too_large = true;
                                store.data = Vec::new();
                            } else if !store.too_large {
                                store.data.extend_from_slice(&pdv.data);
                            }
                            if pdv.is_last {
                                let store = current.take().ok_or("lost the store state")?;
                                finish(&mut assoc, store, shared).await?;
                            }
                        }
                    }
                }
            }
            Pdu::ReleaseRQ => {
                assoc.send(&Pdu::ReleaseRP).await?;
                return Ok(());
            }
            Pdu::AbortRQ { .. } => return Ok(()),
            _ => {
                assoc.abort().await?;
                return Ok(());
            }
        }
    }
}

async fn finish<S>(
    assoc: &mut dicom_ul::association::AsyncServerAssociation<S>,
    store: Store,
    shared: &Arc<Shared>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let (status, comment) = if store.too_large {
        (OUT_OF_RESOURCES, Some("instance larger than the gateway accepts".to_string()))
    } else {
        let pipeline = shared.pipeline.clone();
        let data = store.data;
        let r = tokio::task::spawn_blocking(move || pipeline.receive(&data)).await;
        match r {
            Ok(Ok(Received::Queued { .. })) => {
                shared.wake.notify_one();
                (SUCCESS, None)
            }
            Ok(Ok(Received::Held)) => {
                tracing::info!("instance held for assignment on the status page");
                (SUCCESS, None)
            }
            Ok(Err(ReceiveError::Refused(reason))) => {
                tracing::warn!(%reason, "C-STORE refused");
                (CANNOT_UNDERSTAND, Some(reason))
            }
            Ok(Err(ReceiveError::Internal(reason))) => {
                tracing::error!(%reason, "could not spool an instance");
                (OUT_OF_RESOURCES, Some("the gateway could not store it; retry later".to_string()))
            }
            Err(e) => {
                tracing::error!(error = %e, "spooling task failed");
                (OUT_OF_RESOURCES, Some("the gateway could not store it; retry later".to_string()))
            }
        }
    };
    let mut elems = vec![
        DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, PrimitiveValue::from(store.sop_class.as_str())),
        DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(C_STORE_RSP)),
        DataElement::new(tags::MESSAGE_ID_BEING_RESPONDED_TO, VR::US, PrimitiveValue::from(store.message_id)),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, PrimitiveValue::from(NO_DATA_SET)),
        DataElement::new(tags::STATUS, VR::US, PrimitiveValue::from(status)),
        DataElement::new(tags::AFFECTED_SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(store.sop_instance.as_str())),
    ];
    if let Some(c) = comment {
        let c: String = c.chars().take(64).collect();
        elems.push(DataElement::new(tags::ERROR_COMMENT, VR::LO, PrimitiveValue::from(c)));
    }
    send_command(assoc, store.pc_id, encode_command(elems)?).await
}

async fn send_command<S>(
    assoc: &mut dicom_ul::association::AsyncServerAssociation<S>,
    pc_id: u8,
    data: Vec<u8>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc_id,
                value_type: PDataValueType::Command,
                is_last: true,
                data,
            }],
        })
        .await?;
    Ok(())
}

/// The Part 10 header a network data set lacks.
fn file_meta_prefix(
    sop_class: &str,
    sop_instance: &str,
    ts: &str,
) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop_instance)
        .transfer_syntax(ts)
        .implementation_class_uid("1.2.826.0.1.3680043.10.1542.2")
        .implementation_version_name("CORELAB_GW")
        .build()?;
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    meta.write(&mut out)?;
    Ok(out)
}

fn cmd_u16(cmd: &InMemDicomObject, tag: Tag) -> Result<u16, String> {
    cmd.element(tag).ok().and_then(|e| e.to_int::<u16>().ok()).ok_or_else(|| format!("missing or bad {tag}"))
}

fn cmd_str(cmd: &InMemDicomObject, tag: Tag) -> Result<String, String> {
    cmd.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .ok_or_else(|| format!("missing {tag}"))
}
