//! Documents: files the core lab keeps beside the images (charter PDFs, training material,
//! qualification evidence). Bytes go to the blob store; the row and its audit record commit
//! together once the blob is durable.

use corelab_store::records::DocumentRow;
use serde_json::Value;
use tokio::io::AsyncRead;
use uuid::Uuid;

use crate::audit::{change, record};
use crate::{Actor, App, AppError};

/// What an uploader says about the file.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub name: String,
    pub content_type: String,
}

fn validate_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 255 || name.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err(AppError::invalid(
            "name",
            "give the document a file name of 1 to 255 characters without slashes or control characters",
        ));
    }
    Ok(name.to_string())
}

impl App {
    /// Stores a document. The call returns only after the bytes and the row are durable.
    pub async fn upload_document<R: AsyncRead + Unpin>(
        &self,
        actor: &Actor,
        doc: NewDocument,
        body: R,
    ) -> Result<DocumentRow, AppError> {
        self.require_admin(actor, "upload a document", "document", "new").await?;
        let name = validate_name(&doc.name)?;
        let staged = self.blobs().stage(body, self.settings().max_document_bytes).await?;
        let id = Uuid::now_v7();
        let key = format!("documents/{id}");
        let row = DocumentRow {
            id,
            name,
            content_type: doc.content_type,
            size_bytes: i64::try_from(staged.size).map_err(AppError::internal)?,
            sha256: staged.sha256.clone(),
            blob_key: key.clone(),
            uploaded_by: actor.user_id.unwrap_or_default(),
            created_at: self.clock().now(),
        };
        // Blob first: a row must never point at bytes that are not there.
        self.blobs().commit(staged, &key).await?;
        let mut tx = self.db().begin().await?;
        tx.insert_document(&row).await?;
        tx.append_audit(record(
            actor,
            row.created_at,
            "create",
            "document",
            row.id,
            vec![
                change("name", Value::Null, row.name.clone()),
                change("size_bytes", Value::Null, row.size_bytes),
                change("sha256", Value::Null, row.sha256.clone()),
            ],
        ))
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// A document's record, for any logged-in user.
    pub async fn document(&self, _actor: &Actor, id: Uuid) -> Result<DocumentRow, AppError> {
        let mut tx = self.db().read().await?;
        tx.document(id).await?.ok_or_else(|| AppError::NotFound(format!("no document {id}")))
    }

    pub async fn list_documents(&self, _actor: &Actor) -> Result<Vec<DocumentRow>, AppError> {
        let mut tx = self.db().read().await?;
        Ok(tx.list_documents().await?)
    }

    /// The document's bytes as a stream.
    pub async fn document_content(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<(DocumentRow, corelab_store::BlobStream), AppError> {
        let row = self.document(actor, id).await?;
        let stream = self.blobs().get(&row.blob_key).await?;
        Ok((row, stream))
    }
}
